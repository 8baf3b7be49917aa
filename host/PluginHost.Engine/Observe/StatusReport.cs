using PluginHost.Compose;
using PluginHost.Datapath;
using PluginHost.Kernel;

namespace PluginHost.Observe;

/// <summary>One pipeline as <c>status</c> shows it, read from the pins and the state file.</summary>
public sealed record PipelineStatus(string Name, string Interface, string Direction, string? Namespace, uint Generation,
    bool Attached, uint LinkId, uint ProgramId, IReadOnlyList<string> Stages, int Retiring, string? Problem);

/// <summary>One pipeline's counters as <c>stats --json</c> and the API give them: totals across generations.</summary>
public sealed record PipelineStats(string Pipeline, uint Generation, IReadOnlyDictionary<string, ulong> Entry, IReadOnlyList<StageStats> Stages);

public sealed record StageStats(int Index, string Plugin, string Instance, IReadOnlyDictionary<string, ulong> Counters);

/// <summary>Reads what a host left pinned; needs no running host. The CLI, the API and /metrics all use it, so they agree.</summary>
public static class StatusReport
{
    public static IReadOnlyList<PipelineStatus> Status(string runtimeDirectory) =>
        PipelineState.LoadAll(runtimeDirectory).Select(Describe).ToList();

    public static IReadOnlyList<PipelineStats> Stats(string runtimeDirectory) =>
        PipelineState.LoadAll(runtimeDirectory).Select(Stats).ToList();

    /// <summary>One pipeline's counters, totals across generations.</summary>
    public static PipelineStats Stats(PipelineState s)
    {
        var c = CounterReader.ReadPinned(s);
        return new PipelineStats(s.Name, s.Generation,
            c.Entry.ToDictionary(kv => CounterLayout.Snake(kv.Key.ToString()), kv => kv.Value),
            c.Stages.Select((row, i) => new StageStats(i, s.Stages[i].Plugin, s.Stages[i].Instance,
                row.ToDictionary(kv => CounterLayout.Snake(kv.Key.ToString()), kv => kv.Value))).ToList());
    }

    private static PipelineStatus Describe(PipelineState s)
    {
        var stages = s.Stages.Select(st => st.Plugin).ToList();
        try
        {
            using var link = TcxLink.OpenPinned(Path.Combine(s.PinDirectory, PipelineDeployer.LinkPin));
            var info = link.Info;
            bool attached = info.Ifindex != 0;
            return new PipelineStatus(s.Name, s.Interface, s.Direction, s.Namespace, s.Generation, attached, info.LinkId, info.ProgramId,
                stages, s.Retiring.Count, attached ? null : "the interface is gone");
        }
        catch (Interop.BpfException e)
        {
            return new PipelineStatus(s.Name, s.Interface, s.Direction, s.Namespace, s.Generation, false, 0, 0, stages, s.Retiring.Count, e.Message);
        }
    }
}
