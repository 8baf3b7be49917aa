using PluginHost.Datapath;
using PluginHost.Compose;
using PluginHost.Kernel;

namespace PluginHost.Observe;

/// <summary>Counters of one pipeline, summed over CPUs.</summary>
public sealed record PipelineCounters(
    IReadOnlyDictionary<EntryCounter, ulong> Entry,
    IReadOnlyList<IReadOnlyDictionary<StageCounter, ulong>> Stages);

/// <summary>Reads the per-CPU stats map (pinned or live) and sums it.</summary>
public static class CounterReader
{
    public static PipelineCounters Read(BpfMap stats, int stageCount)
    {
        var entryRow = SumRow(stats, 0);
        var entry = Enum.GetValues<EntryCounter>().ToDictionary(c => c, c => entryRow[(int)c]);
        // Packets that reached a stage: what entered the chain, less what earlier stages finished.
        // Saturating: a read races with packets in flight, whose counts may land between two rows.
        ulong reaching = CounterLayout.PassReasons.Aggregate(entry[EntryCounter.Packets], (left, c) => Minus(left, entry[c]));
        var stages = new List<IReadOnlyDictionary<StageCounter, ulong>>(stageCount);
        for (int i = 0; i < stageCount; i++)
        {
            var row = SumRow(stats, (uint)i + 1);
            var counters = Enum.GetValues<StageCounter>().ToDictionary(c => c, c => c == StageCounter.Packets ? reaching : row[(int)c]);
            reaching = CounterLayout.StageOutcomes.Aggregate(reaching, (left, c) => Minus(left, counters[c]));
            stages.Add(counters);
        }
        return new PipelineCounters(entry, stages);
    }

    private static ulong Minus(ulong left, ulong right) => left > right ? left - right : 0;

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
        var zero = new byte[RowBytes * BpfFs.PossibleCpus];
        for (uint row = 0; row < rows; row++)
            stats.Update(BitConverter.GetBytes(row), zero);
    }

    private const int RowBytes = 8 * CounterLayout.PerRow;

    // One row (struct ph_stats_row) from every CPU, summed column by column.
    private static ulong[] SumRow(BpfMap map, uint row)
    {
        var totals = new ulong[CounterLayout.PerRow];
        var value = new byte[RowBytes * BpfFs.PossibleCpus];
        if (!map.TryLookup(BitConverter.GetBytes(row), value))
            return totals;
        for (int cpu = 0; cpu < BpfFs.PossibleCpus; cpu++)
            for (int c = 0; c < CounterLayout.PerRow; c++)
                totals[c] += BitConverter.ToUInt64(value, cpu * RowBytes + c * 8);
        return totals;
    }
}
