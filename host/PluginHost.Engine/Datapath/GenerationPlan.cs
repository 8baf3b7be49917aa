using System.Security.Cryptography;
using System.Text;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Observe;
using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>What a stage map becomes in a new generation.</summary>
internal enum MapFate
{
    /// <summary>The pinned map is taken over as it is (same layout); config maps are then changed by difference.</summary>
    Reused,
    /// <summary>A state map whose layout changed: a fresh map, filled by the plugin's migration from the old one.</summary>
    Migrated,
    /// <summary>A fresh map: config maps are written whole, state maps start empty.</summary>
    Fresh,
}

/// <param name="Pin">Where the map is pinned once the generation is live: the old pin when reused, a new one otherwise.</param>
/// <param name="Old">The running generation's map it replaces or reuses, if any.</param>
/// <param name="Desired">For configuration maps: the entries it must hold (null for state maps).</param>
internal sealed record MapDecision(StageSpec Stage, StageMap Map, MapFate Fate, string Pin, MapState? Old, PackedEntries? Desired)
{
    /// <summary>Configuration maps are made to hold <see cref="Desired"/>; per-CPU values are not compared, such maps are written whole when fresh.</summary>
    public bool IsDiffed => Map.Schema.Contents == MapContents.Config && Map.Schema.Kind != MapKind.PerCpuArray;

    /// <summary>A copy of a double-buffered map or a bank selector: changed by <see cref="BankSwitcher"/> as a stage's group.</summary>
    public bool IsBanked => Map.Schema.DoubleBuffered || Map.IsBankSelector;
}

/// <summary>
/// What an apply of one pipeline will do, decided before any fd is opened: change the running generation's maps in
/// place (same code), or build generation <see cref="Generation"/> with each map reused, migrated or fresh, and the
/// pin layout: <c>&lt;pipeline&gt;/link</c> (the tcx link, created once, then swapped with one update),
/// <c>&lt;pipeline&gt;/g&lt;N&gt;/</c> (entry program, prog array, stats) and <c>&lt;pipeline&gt;/maps/</c>
/// (stage maps, kept across generations while their layout is unchanged).
/// </summary>
internal sealed record GenerationPlan(
    PlannedPipeline Planned,
    ChainSpec Spec,
    string CodeKey,
    bool InPlace,
    uint Generation,
    string PipelineDirectory,
    PipelineState? Live,
    IReadOnlyList<MapDecision> Maps)
{
    /// <summary>The stages' plugin builds (<see cref="CanaryKeyOf"/>).</summary>
    public string CanaryKey { get; init; } = "";

    /// <summary>An in-place change under plugin builds other than those whose canaries last ran (a new build with the same
    /// C): the canaries run, through a copy of the chain, before the change goes live.</summary>
    public bool CanariesChanged => InPlace && Live?.CanaryKey != CanaryKey;

    /// <summary>What the state file said, even when its pins were gone (its counter totals and retiring generations carry over).</summary>
    public PipelineState? Recorded { get; init; } = Live;

    public const string LinkPin = "link";
    public const string MapsDirectory = "maps";

    public string Name => Planned.Config.Name;

    public string LinkPath => Path.Combine(PipelineDirectory, LinkPin);

    public string GenerationDirectory => Path.Combine(PipelineDirectory, $"g{Generation}");

    public string EntryPin => Path.Combine(GenerationDirectory, ChainSpec.EntryProgram);

    /// <summary>The running generation's entry program, the expected value of the link's compare-and-swap.</summary>
    public string? LiveEntryPin => Live is null ? null : Path.Combine(Live.GenerationDirectory, ChainSpec.EntryProgram);

    /// <summary>Maps taken over from the running generation, by C name → pin.</summary>
    public IReadOnlyDictionary<string, string> ReusedPins => Maps.Where(m => m.Fate == MapFate.Reused).ToDictionary(m => m.Map.CName, m => m.Pin);

    /// <summary>
    /// Decide. <paramref name="recorded"/> is the pipeline's state file (null when none); it describes the running
    /// generation while its link and generation pins exist. <paramref name="pinExists"/> and
    /// <paramref name="pinnedGenerations"/> describe the BPF filesystem.
    /// Refuses (<see cref="ReloadRefusedException"/>) a state map whose layout changed when its plugin has no migration.
    /// </summary>
    public static GenerationPlan Decide(PlannedPipeline planned, ChainSpec spec, string bpfRoot, PipelineState? recorded,
        Func<string, bool> pinExists, IReadOnlyList<uint> pinnedGenerations)
    {
        string name = planned.Config.Name;
        string pipelineDir = Path.Combine(bpfRoot, name);
        var live = recorded is not null && pinExists(Path.Combine(pipelineDir, LinkPin)) && pinExists(recorded.GenerationDirectory) ? recorded : null;
        string codeKey = CodeKeyOf(spec, planned);
        string canaryKey = CanaryKeyOf(planned.Plan);
        if (live is not null && live.CodeKey == codeKey)
        {
            // Same code: only map entries can differ, changed in place in the running generation's maps.
            var maps = new List<MapDecision>();
            foreach (var stage in spec.Stages)
                foreach (var map in stage.Maps)
                    if (live.Maps.FirstOrDefault(m => m.CName == map.CName) is { } old)
                        maps.Add(new MapDecision(stage, map, MapFate.Reused, old.Pin, old, DesiredOf(planned, stage, map)));
            return new GenerationPlan(planned, spec, codeKey, true, live.Generation, live.PinDirectory, live, maps) { CanaryKey = canaryKey };
        }

        uint generation = Math.Max(recorded?.Generation ?? 0, pinnedGenerations.Count == 0 ? 0 : pinnedGenerations.Max()) + 1;
        var decisions = new List<MapDecision>();
        foreach (var stage in spec.Stages)
            foreach (var map in stage.Maps)
            {
                var desired = DesiredOf(planned, stage, map);
                string freshPin = Path.Combine(pipelineDir, MapsDirectory, $"{map.PinName}-g{generation}");
                var old = live?.Maps.FirstOrDefault(m => m.PinName == map.PinName);
                if (old is null || !pinExists(old.Pin))
                    decisions.Add(new MapDecision(stage, map, MapFate.Fresh, freshPin, null, desired));
                else if (old.Fingerprint == map.Fingerprint)
                    decisions.Add(new MapDecision(stage, map, MapFate.Reused, old.Pin, old, desired));
                else if (map.Schema.Contents == MapContents.Config && old.Schema.Contents == MapContents.Config)
                    decisions.Add(new MapDecision(stage, map, MapFate.Fresh, freshPin, old, desired)); // refilled from configuration
                else if (planned.Plan.Stages[stage.Index].Migrate is null)
                    throw new ReloadRefusedException($"reload pipeline {name}: map {map.PinName} changed layout " +
                        $"({StageMap.Difference(old.Schema, map.Schema)}) and plugin {stage.PluginName} provides no migration " +
                        "(implement IMapMigration, or remove the stage to drop its state); the running generation is unchanged");
                else
                    decisions.Add(new MapDecision(stage, map, MapFate.Migrated, freshPin, old, desired));
            }
        return new GenerationPlan(planned, spec, codeKey, false, generation, pipelineDir, live, FreshBanksWhole(decisions, pipelineDir, generation))
            { Recorded = recorded, CanaryKey = canaryKey };
    }

    // A stage's double-buffered copies and bank selector are reused together or not at all: a fresh selector (0) over
    // reused copies could name the copy the running generation's packets use as the one to write.
    private static List<MapDecision> FreshBanksWhole(List<MapDecision> decisions, string pipelineDir, uint generation)
    {
        var splitStages = decisions.Where(d => d.IsBanked).GroupBy(d => d.Stage.Index)
            .Where(g => g.Any(d => d.Fate != MapFate.Reused)).Select(g => g.Key).ToHashSet();
        return decisions.Select(d => d.IsBanked && splitStages.Contains(d.Stage.Index) && d.Fate == MapFate.Reused
            ? d with { Fate = MapFate.Fresh, Pin = Path.Combine(pipelineDir, MapsDirectory, $"{d.Map.PinName}-g{generation}") }
            : d).ToList();
    }

    /// <summary>
    /// What the link runs, against what the state file says. The state is recorded before the link update, so a host
    /// killed in between finds the state naming generation N while the link still runs the previous one: that one is
    /// adopted (and N retired at once, never having run). Returns the state to go on from and, when it differs from
    /// <paramref name="recorded"/>, why. <paramref name="running"/> is the program the link runs (0: no link).
    /// </summary>
    public static (PipelineState? State, string? Adopted) Adopt(PipelineState? recorded, uint running, Func<string, uint?> programOf, DateTimeOffset now)
    {
        if (recorded is null || running == 0 || programOf(recorded.EntryPin) == running)
            return (recorded, null);
        if (recorded.Previous is { } previous && programOf(previous.EntryPin) == running)
        {
            var retiring = recorded.Retiring.Where(r => r.Generation != previous.Generation)
                .Append(new RetiringGeneration(recorded.Generation, recorded.Stages.Select(s => s.Instance).ToList(), now)).ToList();
            return (previous with { Retired = recorded.Retired, Retiring = retiring, Previous = null },
                $"the state names generation {recorded.Generation} but the link runs generation {previous.Generation}: adopted generation {previous.Generation}");
        }
        return (recorded, null); // a program no recorded generation has: the compare-and-swap will refuse, and status says so
    }

    // The code and the hook it runs on: equal means no new generation is needed.
    private static string CodeKeyOf(ChainSpec spec, PlannedPipeline planned) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"{SourceHash.GetValue(spec, s => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s.Source))))}\0{planned.Ifindex}\0{planned.Config.Direction}\0{planned.Config.Namespace}")))[..24];

    // A kept composition (ChainComposer) is hashed once, not on every apply.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ChainSpec, string> SourceHash = [];

    /// <summary>
    /// The identity of the code the canaries check: each stage's plugin build. A DLL whose C# changed but whose generated C
    /// did not is still another plugin, so its canaries run (through a copy of the chain) before its change goes live. A
    /// change of settings alone under the same builds (a runtime command) is map entries only: that copy, a second load of
    /// the chain, would cost every <c>route add</c> hundreds of milliseconds.
    /// </summary>
    internal static string CanaryKeyOf(PipelinePlan plan)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var stage in plan.Stages)
            hash.AppendData(Encoding.UTF8.GetBytes($"{stage.PluginName}\0{stage.Build.Sha256}\0"));
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..24];
    }

    private static PackedEntries? DesiredOf(PlannedPipeline planned, StageSpec stage, StageMap map) =>
        map.Schema.Contents != MapContents.Config ? null
        : planned.StageEntries[stage.Index].GetValueOrDefault(map.Schema.Name) ?? new PackedEntries(map.Key.Size, map.Value.Size);

    /// <summary>The state file of the pipeline once this generation is live.</summary>
    public PipelineState NextState(DateTimeOffset now, TimeSpan retireAfter)
    {
        var config = Planned.Config;
        var retiring = (Recorded?.Retiring ?? []).ToList();
        if (Live is not null)
            retiring.Add(new RetiringGeneration(Live.Generation, Live.Stages.Select(s => s.Instance).ToList(), now + retireAfter));
        return new PipelineState(config.Name, config.Interface, config.Namespace, config.Direction.ToString().ToLowerInvariant(),
            Planned.Ifindex, Generation, PipelineDirectory, GenerationDirectory, now,
            StageStates(),
            CodeKey, Maps.Select(m => new MapState(m.Pin, m.Map.PinName, m.Map.CName, m.Stage.Index, m.Map.Fingerprint, m.Map.Schema)).ToList(),
            Recorded?.Retired ?? CounterTotals.Empty(), retiring, Live is null ? null : Live with { Previous = null })
            { CanaryKey = CanaryKey };
    }

    /// <summary>The stages as the state file records them, with the plugin builds they come from.</summary>
    public IReadOnlyList<StageState> StageStates() => Spec.Stages.Select(s => new StageState(s.Index, s.PluginName, s.InstanceName, s.ProgramName,
        s.Maps.Select(m => m.CName).ToList())
        { Version = Planned.Plan.Stages[s.Index].Build.Version, Sha256 = Planned.Plan.Stages[s.Index].Build.Sha256 }).ToList();
}
