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

    /// <summary>The running generation's counters plus those of every retired generation: totals since first deploy.</summary>
    public static PipelineCounters ReadPinned(PipelineState state)
    {
        using var stats = BpfMap.OpenPinned(Path.Combine(state.GenerationDirectory, ChainSpec.StatsMap));
        var live = Read(stats, state.Stages.Count);
        var entry = live.Entry.ToDictionary(kv => kv.Key, kv => kv.Value + state.Retired.Entry.GetValueOrDefault(kv.Key.ToString()));
        var stages = live.Stages.Select((row, i) =>
        {
            var retired = state.Retired.Stages.GetValueOrDefault(state.Stages[i].Instance) ?? [];
            return (IReadOnlyDictionary<StageCounter, ulong>)row.ToDictionary(kv => kv.Key, kv => kv.Value + retired.GetValueOrDefault(kv.Key.ToString()));
        }).ToList();
        return new PipelineCounters(entry, stages);
    }

    /// <summary>Zero every counter (a new generation's map after its canary run, before it goes live).</summary>
    public static void Clear(BpfMap stats, int rows)
    {
        var zero = new byte[8 * BpfFs.PossibleCpus];
        for (int row = 0; row < rows; row++)
            for (int column = 0; column < CounterLayout.PerRow; column++)
                stats.Update(BitConverter.GetBytes(CounterLayout.Key(row, column)), zero);
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
