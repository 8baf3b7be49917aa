using PluginHost.Datapath;
using PluginHost.Kernel;

namespace PluginHost.Observe;

/// <summary>One pipeline as <c>status</c> shows it, read from the pins and the state file.</summary>
public sealed record PipelineStatus(string Name, string Interface, string Direction, string? Namespace, uint Generation,
    bool Attached, uint LinkId, uint ProgramId, IReadOnlyList<string> Stages, int Retiring, string? Problem);

/// <summary>Reads what a host left pinned; needs no running host. The CLI, the API and /metrics all use it, so they agree.</summary>
public static class StatusReport
{
    public static IReadOnlyList<PipelineStatus> Status(string runtimeDirectory) =>
        PipelineState.LoadAll(runtimeDirectory).Select(Describe).ToList();

    /// <summary>Every deployed pipeline's counters, totals across generations.</summary>
    public static IReadOnlyList<PipelineCounters> Stats(string runtimeDirectory) =>
        PipelineState.LoadAll(runtimeDirectory).Select(CounterReader.ReadPinned).ToList();

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
