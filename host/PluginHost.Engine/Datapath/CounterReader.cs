using PluginHost.Compose;
using PluginHost.Kernel;

namespace PluginHost.Datapath;

/// <summary>Counters of one pipeline, summed over CPUs.</summary>
public sealed record PipelineCounters(
    IReadOnlyDictionary<EntryCounter, ulong> Entry,
    IReadOnlyList<IReadOnlyDictionary<StageCounter, ulong>> Stages);

/// <summary>Reads the per-CPU stats map (pinned or live) and sums it.</summary>
public static class CounterReader
{
    public static PipelineCounters Read(BpfMap stats, int stageCount)
    {
        var entry = Enum.GetValues<EntryCounter>().ToDictionary(c => c, c => Sum(stats, CounterLayout.Key(0, (int)c)));
        var stages = Enumerable.Range(0, stageCount)
            .Select(i => (IReadOnlyDictionary<StageCounter, ulong>)Enum.GetValues<StageCounter>()
                .ToDictionary(c => c, c => Sum(stats, CounterLayout.Key(i + 1, (int)c))))
            .ToList();
        return new PipelineCounters(entry, stages);
    }

    public static PipelineCounters ReadPinned(PipelineState state)
    {
        using var stats = BpfMap.OpenPinned(Path.Combine(state.GenerationDirectory, ChainSpec.StatsMap));
        return Read(stats, state.Stages.Count);
    }

    private static ulong Sum(BpfMap map, uint key)
    {
        Span<byte> value = stackalloc byte[8 * BpfFs.PossibleCpus];
        if (!map.TryLookup(BitConverter.GetBytes(key), value))
            return 0;
        ulong total = 0;
        for (int cpu = 0; cpu < BpfFs.PossibleCpus; cpu++)
            total += BitConverter.ToUInt64(value.Slice(cpu * 8, 8));
        return total;
    }
}
