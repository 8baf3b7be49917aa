using PluginHost.Datapath;
using PluginHost.Compose;
using PluginHost.Kernel;

namespace PluginHost.Observe;

/// <summary>
/// One pipeline's counters: the entry program's row and each stage's, as the stats map holds them (summed over
/// CPUs) with the derived per-stage packets. Read from one generation's map (<see cref="CounterReader.Read(BpfMap, string, uint, IReadOnlyList{ValueTuple{string, string}})"/>)
/// or, from the pins, totals since first deploy (<see cref="CounterReader.ReadPinned"/>). What <c>stats</c> (table,
/// <c>--json</c>, <c>--watch</c>), <c>GET /v1/stats</c>, <c>pipeline show</c> and <c>/metrics</c> show.
/// </summary>
/// <param name="Generation">The generation whose map was read (for totals: the running one).</param>
public sealed record PipelineCounters(string Pipeline, uint Generation, CounterRow<EntryCounter> Entry, IReadOnlyList<StageCounters> Stages)
{
    /// <summary>These counters plus those retired generations left in <paramref name="retired"/>, stage by stage instance.</summary>
    public PipelineCounters Plus(CounterTotals retired) => this with
    {
        Entry = Entry + retired.Entry,
        Stages = Stages.Select(s => retired.Stages.TryGetValue(s.Instance, out var r) ? s with { Counters = s.Counters + r } : s).ToList(),
    };

    /// <summary>
    /// What was counted since <paramref name="earlier"/>, a reading of the same pipeline (never below zero). A stage
    /// absent from it (added since) shows zero: it has no earlier reading to count from.
    /// </summary>
    public PipelineCounters Since(PipelineCounters earlier) => this with
    {
        Entry = Entry - earlier.Entry,
        Stages = Stages.Select(s => s with
        {
            Counters = earlier.Stages.FirstOrDefault(e => e.Instance == s.Instance) is { } before ? s.Counters - before.Counters : CounterRow<StageCounter>.Zero,
        }).ToList(),
    };
}

/// <summary>One stage's row.</summary>
/// <param name="Instance">Plugin and occurrence (SourcePolicy-0): the stage's identity across generations, which totals follow.</param>
public sealed record StageCounters(int Index, string Plugin, string Instance, CounterRow<StageCounter> Counters)
{
    public ulong this[StageCounter counter] => Counters[counter];
}

/// <summary>Reads the per-CPU stats map (pinned or live): the only code that turns map bytes into counters.</summary>
public static class CounterReader
{
    /// <summary>One generation's map; <paramref name="stages"/> names its stages in chain order.</summary>
    public static PipelineCounters Read(BpfMap stats, string pipeline, uint generation, IReadOnlyList<(string Plugin, string Instance)> stages) =>
        FromRows(pipeline, generation, stages, row => SumRow(stats, row));

    /// <summary>
    /// Counters from the map's rows (<paramref name="row"/>: row number → columns summed over CPUs), with each
    /// stage's packets derived: what the entry handed to the chain (packets less those passed to the kernel by a
    /// reason), less what the stages before it redirected, dropped or passed. A stage row's own column 0 is ignored.
    /// </summary>
    internal static PipelineCounters FromRows(string pipeline, uint generation, IReadOnlyList<(string Plugin, string Instance)> stages, Func<uint, ulong[]> row)
    {
        var entry = CounterRow<EntryCounter>.FromColumns(row(0));
        // Saturating: a read races with packets in flight, whose counts may land between two rows.
        ulong reaching = CounterLayout.PassReasons.Aggregate(entry[EntryCounter.Packets], (left, c) => Minus(left, entry[c]));
        var rows = new List<StageCounters>(stages.Count);
        for (int i = 0; i < stages.Count; i++)
        {
            var counters = CounterRow<StageCounter>.FromColumns(row((uint)i + 1)).With(StageCounter.Packets, reaching);
            reaching = CounterLayout.StageOutcomes.Aggregate(reaching, (left, c) => Minus(left, counters[c]));
            rows.Add(new StageCounters(i, stages[i].Plugin, stages[i].Instance, counters));
        }
        return new PipelineCounters(pipeline, generation, entry, rows);
    }

    /// <summary>
    /// One generation's map when only the number of stages is at hand: stages are named by position only
    /// (empty plugin and instance) until <see cref="CounterTotals.Add"/> gives them their instances.
    /// </summary>
    public static PipelineCounters Read(BpfMap stats, int stageCount) =>
        Read(stats, "", 0, Enumerable.Repeat(("", ""), stageCount).ToList());

    private static ulong Minus(ulong left, ulong right) => left > right ? left - right : 0;

    /// <summary>The running generation's counters plus those of every retired generation: totals since first deploy.</summary>
    public static PipelineCounters ReadPinned(PipelineState state)
    {
        using var stats = BpfMap.OpenPinned(Path.Combine(state.GenerationDirectory, ChainSpec.StatsMap));
        return Read(stats, state.Name, state.Generation, state.Stages.Select(s => (s.Plugin, s.Instance)).ToList()).Plus(state.Retired);
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
