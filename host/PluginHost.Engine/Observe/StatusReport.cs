using PluginHost.Datapath;
using PluginHost.Kernel;

namespace PluginHost.Observe;

/// <summary>One pipeline as <c>status</c> shows it, read from the pins, the state file and what the last apply withdrew.</summary>
/// <param name="Withdrawn">Output interfaces missing or down at the last apply: their routes are withdrawn (the kernel routes their packets).</param>
public sealed record PipelineStatus(string Name, string Interface, string Direction, string? Namespace, uint Generation,
    bool Attached, uint LinkId, uint ProgramId, IReadOnlyList<string> Stages, int Retiring, string? Problem,
    IReadOnlyList<WithdrawnInterface> Withdrawn)
{
    /// <summary>The health probes its stages declare, with their states as the running host last saved them.</summary>
    public IReadOnlyList<Health.ProbeStatus> Probes { get; init; } = [];

    /// <summary>Each stage's plugin build that runs: version and DLL SHA-256 (empty when the state file predates them).</summary>
    public IReadOnlyList<StageBuildStatus> Builds { get; init; } = [];

    /// <summary>How many canaries passed when what they check last changed (0: not recorded).</summary>
    public int CanariesPassed { get; init; }
}

/// <summary>The plugin build a stage runs.</summary>
/// <param name="Sha256">The DLL's SHA-256 (status shows its first 12 digits).</param>
public sealed record StageBuildStatus(int Index, string Plugin, string Version, string Sha256);

/// <summary>Reads what a host left pinned; needs no running host. The CLI, the API and /metrics all use it, so they agree.</summary>
public static class StatusReport
{
    public static IReadOnlyList<PipelineStatus> Status(string runtimeDirectory)
    {
        var withdrawn = WithdrawnRoutes.Load(runtimeDirectory);
        var probes = Health.ProbeFile.Load(runtimeDirectory);
        return PipelineState.LoadAll(runtimeDirectory).Select(s => Describe(s, withdrawn.GetValueOrDefault(s.Name) ?? [])
            with
            {
                Probes = probes.GetValueOrDefault(s.Name) ?? [],
                Builds = s.Stages.Select(st => new StageBuildStatus(st.Index, st.Plugin, st.Version, st.Sha256)).ToList(),
                CanariesPassed = s.CanariesPassed,
            }).ToList();
    }

    /// <summary>Every deployed pipeline's counters, totals across generations.</summary>
    public static IReadOnlyList<PipelineCounters> Stats(string runtimeDirectory) =>
        PipelineState.LoadAll(runtimeDirectory).Select(CounterReader.ReadPinned).ToList();

    private static PipelineStatus Describe(PipelineState s, IReadOnlyList<WithdrawnInterface> withdrawn)
    {
        var stages = s.Stages.Select(st => st.Plugin).ToList();
        try
        {
            using var link = TcxLink.OpenPinned(Path.Combine(s.PinDirectory, PipelineDeployer.LinkPin));
            var info = link.Info;
            bool attached = info.Ifindex != 0;
            var problems = new List<string>();
            if (!attached)
                problems.Add("the interface is gone");
            // What the link runs must be the generation the state names: anything else runs stages the host does not know.
            if (ProgramOf(s.EntryPin) is uint recorded && recorded != info.ProgramId)
                problems.Add($"the link runs program {info.ProgramId}, not generation {s.Generation} (program {recorded})" +
                    (s.Previous is { } p && ProgramOf(p.EntryPin) == info.ProgramId
                        ? $": it still runs generation {p.Generation} (a host stopped during a swap); the next apply adopts it" : ""));
            var missing = s.RequiredPins.Skip(1).Where(pin => !File.Exists(pin)).ToList();
            if (missing.Count > 0)
                problems.Add($"pins missing: {string.Join(", ", missing.Select(m => Path.GetRelativePath(s.PinDirectory, m)))} " +
                    "(a running host restores them; otherwise reload)");
            return new PipelineStatus(s.Name, s.Interface, s.Direction, s.Namespace, s.Generation, attached, info.LinkId, info.ProgramId,
                stages, s.Retiring.Count, problems.Count == 0 ? null : string.Join("; ", problems), withdrawn);
        }
        catch (Interop.BpfException e)
        {
            return new PipelineStatus(s.Name, s.Interface, s.Direction, s.Namespace, s.Generation, false, 0, 0, stages, s.Retiring.Count, e.Message, withdrawn);
        }
    }

    private static uint? ProgramOf(string pin)
    {
        if (!File.Exists(pin))
            return null;
        using var program = BpfProgram.OpenPinned(pin);
        return program.Id;
    }
}
