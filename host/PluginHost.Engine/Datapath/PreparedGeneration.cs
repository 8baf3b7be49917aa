namespace PluginHost.Datapath;

/// <summary>
/// One pipeline's apply between prepare and finish: what it loaded, pinned and changed, so that it can be committed,
/// reverted or aborted. Everything here was created by this attempt; nothing of it is live before the commit.
/// </summary>
internal sealed class PreparedGeneration(GenerationPlan plan) : IDisposable
{
    public GenerationPlan Plan { get; } = plan;

    public string Name => Plan.Name;

    public ILoadedGeneration? Loaded { get; set; }

    /// <summary>Map changes made so far (undo in reverse).</summary>
    public List<MapReconciler.Change> Changes { get; } = [];

    /// <summary>Maps written whole (fresh configuration maps): remembered once the apply is committed.</summary>
    public List<(string Pin, Pipelines.PackedEntries Entries)> WrittenWhole { get; } = [];

    /// <summary>Live maps this attempt started changing (forgotten by <see cref="MapContentsMemory"/> if it aborts).</summary>
    public List<string> TouchedPins { get; } = [];

    /// <summary>Maps opened by pin for this attempt (their undo needs them open).</summary>
    public List<IMapAccess> OpenedMaps { get; } = [];

    /// <summary>Pins this attempt created (removed if it does not go live).</summary>
    public List<string> CreatedPins { get; } = [];

    public CanaryReport Canaries { get; set; } = new(0, []);

    public bool CompileCached { get; set; } = true;

    /// <summary>The link created for this generation (first deploy, or the hook moved).</summary>
    public ILinkAccess? NewLink { get; set; }

    /// <summary>The previous link, kept open while a new one replaced it on another hook, so a revert can put it back.</summary>
    public ILinkAccess? ReplacedLink { get; set; }

    /// <summary>The new link is pinned at the pipeline's link pin.</summary>
    public bool NewLinkPinned { get; set; }

    /// <summary>The replaced link's pin was removed (a revert pins it again).</summary>
    public bool OldLinkUnpinned { get; set; }

    /// <summary>True once the new generation (or in-place change) is what the datapath runs.</summary>
    public bool Committed { get; set; }

    public ApplyKind Kind { get; set; }

    public int EntriesChanged => Changes.Sum(c => c.Entries);

    public TimeSpan Compose, Compile, Load, Canary, Swap;

    public System.Diagnostics.Stopwatch Total { get; } = System.Diagnostics.Stopwatch.StartNew();

    /// <summary>Put every changed map back as it was, newest change first.</summary>
    public void UndoMapChanges()
    {
        for (int i = Changes.Count - 1; i >= 0; i--)
            Changes[i].Undo();
        Changes.Clear();
    }

    public void Dispose()
    {
        Loaded?.Dispose();
        foreach (var map in OpenedMaps)
            map.Dispose();
        NewLink?.Dispose();
        ReplacedLink?.Dispose();
    }
}
