using PluginHost.Compose;

namespace PluginHost.Observe;

/// <summary>
/// What retired generations counted, summed, kept in the pipeline's state file so that totals survive reloads:
/// the entry row, and each stage's row by instance (SourcePolicy-0), since a stage keeps its totals when stages
/// are added or removed around it. Rows are <see cref="CounterRow{TCounter}"/>, as everywhere else.
/// </summary>
/// <remarks>
/// State files written before the counter names were camelCase (<c>"Packets"</c>) read unchanged: counter names are
/// matched case-insensitively. A host older than this one reads the new names as zeros (its totals restart).
/// </remarks>
public sealed record CounterTotals(CounterRow<EntryCounter> Entry, IReadOnlyDictionary<string, CounterRow<StageCounter>> Stages)
{
    public static CounterTotals Empty() => new(CounterRow<EntryCounter>.Zero, new Dictionary<string, CounterRow<StageCounter>>());

    /// <summary>These totals plus one generation's counters, its stages named by <paramref name="stageInstances"/> in chain order.</summary>
    public CounterTotals Add(PipelineCounters generation, IReadOnlyList<string> stageInstances)
    {
        var stages = new Dictionary<string, CounterRow<StageCounter>>(Stages);
        for (int i = 0; i < generation.Stages.Count && i < stageInstances.Count; i++)
        {
            var row = generation.Stages[i].Counters;
            stages[stageInstances[i]] = stages.TryGetValue(stageInstances[i], out var sum) ? sum + row : row;
        }
        return new CounterTotals(Entry + generation.Entry, stages);
    }
}
