namespace PluginHost.Datapath;

/// <summary>What applying a plan did to a pipeline.</summary>
public enum ApplyKind
{
    /// <summary>Nothing differed from the running datapath.</summary>
    Unchanged,
    /// <summary>Same code; map entries were changed in place by difference, no new generation.</summary>
    MapsUpdated,
    /// <summary>A new generation replaced the running one with one link update.</summary>
    Swapped,
    /// <summary>The first generation was attached with a new tcx link.</summary>
    Attached,
}

/// <summary>Outcome and timings of one apply.</summary>
public sealed record ApplyResult(string Pipeline, ApplyKind Kind, uint Generation, uint LinkId, uint ProgramId, int EntriesChanged,
    bool CompileCached, int CanariesRun, TimeSpan Compose, TimeSpan Compile, TimeSpan Load, TimeSpan Canary, TimeSpan Swap, TimeSpan Total)
{
    /// <summary>True when a tcx link was created (rather than updated).</summary>
    public bool Attached => Kind == ApplyKind.Attached;

    /// <summary>Plugin canaries an earlier stage took first: rules that packets like these never reach.</summary>
    public IReadOnlyList<string> Shadowed { get; init; } = [];
}

/// <summary>The reload was refused before anything changed (a map layout changed without a migration).</summary>
internal sealed class ReloadRefusedException(string message) : HostException(message);

/// <summary>
/// Every pipeline was prepared, but committing one failed (a link update refused): the pipelines already committed
/// were put back by the same compare-and-swap. <see cref="Outcomes"/> says where each pipeline stands.
/// </summary>
internal sealed class CommitFailedException(string message, IReadOnlyList<string> outcomes, bool datapathUnchanged, Exception inner)
    : HostException(message, inner)
{
    /// <summary>One line per pipeline: "pipeline NAME: ...".</summary>
    public IReadOnlyList<string> Outcomes { get; } = outcomes;

    /// <summary>True when every pipeline runs what it ran before the apply (every revert succeeded).</summary>
    public bool DatapathUnchanged { get; } = datapathUnchanged;
}

/// <summary>The desired state changed while an apply was prepared: nothing was committed; the newer state is applied next.</summary>
internal sealed class StaleDesiredStateException(string message) : HostException(message);
