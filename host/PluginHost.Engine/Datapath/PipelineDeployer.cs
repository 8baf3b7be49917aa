using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using PluginHost.Observe;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Kernel;
using PluginHost.Net;
using PluginHost.Pipelines;

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
public sealed class ReloadRefusedException(string message) : HostException(message);

/// <summary>
/// Applies a planned pipeline to the kernel by the generation-swap protocol. Pins:
/// <c>&lt;pipeline&gt;/link</c> (the tcx link, created once, then swapped with one update),
/// <c>&lt;pipeline&gt;/g&lt;N&gt;/</c> (entry program, prog array, stats of generation N) and
/// <c>&lt;pipeline&gt;/maps/</c> (stage maps, kept across generations while their layout is unchanged).
/// Anything that fails before the swap leaves the running generation as it was.
/// </summary>
public sealed partial class PipelineDeployer(string bpfRoot, string runtimeDirectory, ClangCompiler compiler, TimeSpan retireAfter,
    ILogger logger, Hosting.ApplyProgress? progress = null, MapContentsMemory? memory = null)
{
    private readonly MapContentsMemory _memory = memory ?? new MapContentsMemory();

    public const string LinkPin = "link";
    public const string MapsDirectory = "maps";


    public string PipelineDirectory(string pipeline) => Path.Combine(bpfRoot, pipeline);

    /// <summary>The next generation number for a pipeline: one more than any pinned or recorded.</summary>
    public uint NextGeneration(string pipeline)
    {
        string dir = PipelineDirectory(pipeline);
        uint max = PipelineState.Load(runtimeDirectory, pipeline)?.Generation ?? 0;
        if (Directory.Exists(dir))
            foreach (var d in Directory.GetDirectories(dir, "g*"))
                if (uint.TryParse(Path.GetFileName(d)[1..], out uint n))
                    max = Math.Max(max, n);
        return max + 1;
    }

    public ApplyResult Apply(PlannedPipeline planned)
    {
        BpfFs.EnsureUsable(bpfRoot);
        var total = Stopwatch.StartNew();
        var config = planned.Config;
        var watch = Stopwatch.StartNew();
        var spec = ChainComposer.Compose(planned.Plan);
        var composeTime = watch.Elapsed;
        string pipelineDir = PipelineDirectory(config.Name);
        string linkPath = Path.Combine(pipelineDir, LinkPin);
        string codeKey = CodeKey(spec, planned);

        var live = PipelineState.Load(runtimeDirectory, config.Name);
        bool liveValid = live is not null && File.Exists(linkPath) && Directory.Exists(live.GenerationDirectory);
        if (liveValid && live!.CodeKey == codeKey)
            return ApplyInPlace(planned, spec, live, composeTime, total);

        watch.Restart();
        var compiled = compiler.Compile(spec.Source, config.Name);
        var compileTime = watch.Elapsed;

        watch.Restart();
        uint generation = NextGeneration(config.Name);
        var plan = PlanMaps(spec, planned, liveValid ? live : null);
        var undo = new List<Action>();
        string genDir = Path.Combine(pipelineDir, $"g{generation}");
        var newPins = new List<string>();
        LoadedChain? chain = null;
        try
        {
            chain = ChainLoader.Load(spec, compiled.ObjectPath, generation, plan.Reuse);
            chain.WriteEntries(planned.StageEntries, m => !chain.Reused.Contains(m.CName) && m.Schema.Contents == MapContents.Config);
            foreach (var (map, old) in plan.Migrate)
                MigrateEntries(spec, planned, map, old, chain.StageMaps[map.CName]);
            var written = new List<Written>();
            int changed = ReconcileConfigMaps(spec, planned, chain.StageMaps, plan.ReusedPins, undo, written);
            var loadTime = watch.Elapsed;

            watch.Restart();
            var canaries = RunCanaries(spec, compiled.ObjectPath, generation, chain, planned);
            foreach (var shadowed in canaries.Shadowed)
                LogShadowed(config.Name, shadowed);
            var canaryTime = watch.Elapsed;

            BpfFs.RemoveTree(genDir); // a leftover of a failed attempt with the same number
            newPins.Add(genDir);
            chain.Entry.Pin(Path.Combine(genDir, ChainSpec.EntryProgram));
            chain.Chain.Pin(Path.Combine(genDir, ChainSpec.ChainMap));
            chain.Stats.Pin(Path.Combine(genDir, ChainSpec.StatsMap));
            var mapStates = new List<MapState>();
            foreach (var stage in spec.Stages)
                foreach (var map in stage.Maps)
                {
                    string pin = plan.ReusedPins.GetValueOrDefault(map.CName)
                        ?? Path.Combine(pipelineDir, MapsDirectory, $"{map.PinName}-g{generation}");
                    if (!chain.Reused.Contains(map.CName))
                    {
                        newPins.Add(pin);
                        chain.StageMaps[map.CName].Pin(pin);
                        if (IsDiffed(map))
                            written.Add(new Written(pin, null, Desired(planned, stage, map)));
                    }
                    mapStates.Add(new MapState(pin, map.PinName, map.CName, stage.Index, map.Fingerprint, map.Schema));
                }

            watch.Restart();
            bool attached = false;
            using var link = SwapOrAttach(linkPath, chain.Entry, planned, liveValid ? live : null, ref attached);
            var swapTime = watch.Elapsed;
            // The new generation is live: from here nothing may be rolled back under it.
            undo.Clear();
            newPins.Clear();
            Remember(written);
            var info = link.Info;

            var now = DateTimeOffset.UtcNow;
            var retiring = (live?.Retiring ?? []).ToList();
            if (liveValid)
                retiring.Add(new RetiringGeneration(live!.Generation, live.Stages.Select(s => s.Instance).ToList(), now + retireAfter));
            var state = new PipelineState(config.Name, config.Interface, config.Namespace, config.Direction.ToString().ToLowerInvariant(),
                planned.Ifindex, generation, pipelineDir, genDir, now,
                spec.Stages.Select(s => new StageState(s.Index, s.PluginName, s.InstanceName, s.ProgramName, s.Maps.Select(m => m.CName).ToList())).ToList(),
                codeKey, mapStates, live?.Retired ?? CounterTotals.Empty(), retiring);
            state.Save(runtimeDirectory);
            TryRetireDue(config.Name);

            var kind = attached ? ApplyKind.Attached : ApplyKind.Swapped;
            LogApplied(config.Name, generation, kind.ToString().ToLowerInvariant(), info.LinkId, info.ProgramId, total.Elapsed.TotalMilliseconds);
            return new ApplyResult(config.Name, kind, generation, info.LinkId, info.ProgramId, changed, compiled.Cached, canaries.Checked,
                composeTime, compileTime, loadTime, canaryTime, swapTime, total.Elapsed) { Shadowed = canaries.Shadowed };
        }
        catch
        {
            // Put reused maps back as they were and drop everything this attempt pinned.
            _memory.Forget(plan.ReusedPins.Values);
            for (int i = undo.Count - 1; i >= 0; i--)
                undo[i]();
            foreach (var pin in newPins)
            {
                if (Directory.Exists(pin))
                    BpfFs.RemoveTree(pin);
                else
                    File.Delete(pin);
            }
            throw;
        }
        finally
        {
            chain?.Dispose();
            foreach (var map in plan.Reuse.Values)
                map.Dispose();
            foreach (var (_, old) in plan.Migrate)
                old.Map.Dispose();
        }
    }

    // Canary packets must not leave traces in live state (flow tables, learned entries). When the chain has
    // state maps, the canaries run through a second copy of the same object that shares the configuration
    // maps but has empty state maps of its own; otherwise through the new generation itself, whose counters
    // are then cleared.
    private static CanaryReport RunCanaries(ChainSpec spec, string objectPath, uint generation, LoadedChain chain, PlannedPipeline planned)
    {
        var stateMaps = spec.Stages.SelectMany(s => s.Maps).Where(m => m.Schema.Contents == MapContents.State).ToList();
        if (stateMaps.Count == 0)
        {
            var report = Canaries.Run(chain, planned.Plan.Stages);
            CounterReader.Clear(chain.Stats, spec.StatsRows);
            return report;
        }
        var shared = spec.Stages.SelectMany(s => s.Maps).Where(m => m.Schema.Contents == MapContents.Config)
            .ToDictionary(m => m.CName, m => chain.StageMaps[m.CName]);
        using var rehearsal = ChainLoader.Load(spec, objectPath, generation, shared);
        return Canaries.Run(rehearsal, planned.Plan.Stages);
    }

    // Same code as the running generation: only map entries can differ, and they are changed in place.
    private ApplyResult ApplyInPlace(PlannedPipeline planned, ChainSpec spec, PipelineState live, TimeSpan composeTime, Stopwatch total)
    {
        var maps = live.Maps.ToDictionary(m => m.CName, m => BpfMap.OpenPinned(m.Pin));
        var undo = new List<Action>();
        try
        {
            int changed;
            var written = new List<Written>();
            try
            {
                changed = ReconcileConfigMaps(spec, planned, maps, live.Maps.ToDictionary(m => m.CName, m => m.Pin), undo, written);
            }
            catch
            {
                _memory.Forget(live.Maps.Select(m => m.Pin));
                for (int i = undo.Count - 1; i >= 0; i--)
                    undo[i]();
                throw;
            }
            Remember(written);
            TryRetireDue(live.Name);
            using var link = TcxLink.OpenPinned(Path.Combine(live.PinDirectory, LinkPin));
            var info = link.Info;
            var kind = changed == 0 ? ApplyKind.Unchanged : ApplyKind.MapsUpdated;
            if (changed > 0)
                LogMapsUpdated(live.Name, changed, total.Elapsed.TotalMilliseconds);
            return new ApplyResult(live.Name, kind, live.Generation, info.LinkId, info.ProgramId, changed, true, 0,
                composeTime, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, total.Elapsed);
        }
        finally
        {
            foreach (var m in maps.Values)
                m.Dispose();
        }
    }

    private static string CodeKey(ChainSpec spec, PlannedPipeline planned) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"{spec.Source}\0{planned.Ifindex}\0{planned.Config.Direction}\0{planned.Config.Namespace}")))[..24];

    private sealed record OldMap(MapState State, BpfMap Map);

    private sealed record MapPlan(Dictionary<string, BpfMap> Reuse, Dictionary<string, string> ReusedPins, List<(StageMap Map, OldMap Old)> Migrate);

    // For each stage map: keep the pinned one (same layout), migrate it (state map, new layout, plugin converts),
    // or start fresh (config maps are refilled from configuration). Refuses before anything is loaded.
    private static MapPlan PlanMaps(ChainSpec spec, PlannedPipeline planned, PipelineState? live)
    {
        var plan = new MapPlan([], [], []);
        try
        {
            foreach (var stage in spec.Stages)
                foreach (var map in stage.Maps)
                {
                    var old = live?.Maps.FirstOrDefault(m => m.PinName == map.PinName);
                    if (old is null || !File.Exists(old.Pin))
                        continue;
                    if (old.Fingerprint == map.Fingerprint)
                    {
                        plan.Reuse[map.CName] = BpfMap.OpenPinned(old.Pin);
                        plan.ReusedPins[map.CName] = old.Pin;
                        continue;
                    }
                    if (map.Schema.Contents == MapContents.Config && old.Schema.Contents == MapContents.Config)
                        continue;
                    var migrate = planned.Plan.Stages[stage.Index].Migrate;
                    if (migrate is null)
                        throw new ReloadRefusedException($"reload pipeline {planned.Config.Name}: map {map.PinName} changed layout " +
                            $"({StageMap.Difference(old.Schema, map.Schema)}) and plugin {stage.PluginName} provides no migration " +
                            "(implement IMapMigration, or remove the stage to drop its state); the running generation is unchanged");
                    plan.Migrate.Add((map, new OldMap(old, BpfMap.OpenPinned(old.Pin))));
                }
            return plan;
        }
        catch
        {
            foreach (var m in plan.Reuse.Values)
                m.Dispose();
            foreach (var (_, old) in plan.Migrate)
                old.Map.Dispose();
            throw;
        }
    }

    private static void MigrateEntries(ChainSpec spec, PlannedPipeline planned, StageMap map, OldMap old, BpfMap target)
    {
        var migrate = planned.Plan.Stages[spec.Stages.Single(s => s.Maps.Contains(map)).Index].Migrate!;
        var oldKey = StructLayout.Compute("old_key", old.State.Schema.Key);
        var oldValue = StructLayout.Compute("old_value", old.State.Schema.Value);
        var value = new byte[old.Map.Info.ValueSize];
        foreach (var key in old.Map.Keys())
        {
            if (!old.Map.TryLookup(key, value))
                continue;
            var converted = migrate(old.State.Schema, map.Schema, new MapEntry(map.Schema.Name, oldKey.Decode(key), oldValue.Decode(value)));
            if (converted is not null)
                target.Update(map.Key.Encode(converted.Key), map.Value.Encode(converted.Value));
        }
    }

    // Configuration maps are made to hold the plan's entries by difference; per-CPU values are not compared
    // (such maps are written whole when fresh).
    private static bool IsDiffed(StageMap map) => map.Schema.Contents == MapContents.Config && map.Schema.Kind != MapKind.PerCpuArray;

    private static PackedEntries Desired(PlannedPipeline planned, StageSpec stage, StageMap map) =>
        planned.StageEntries[stage.Index].GetValueOrDefault(map.Schema.Name) ?? new PackedEntries(map.Key.Size, map.Value.Size);

    /// <summary>A map's contents after an apply: its index when unchanged, else the entries to index.</summary>
    private sealed record Written(string Pin, PackedIndex? Unchanged, PackedEntries Entries);

    private void Remember(List<Written> written)
    {
        foreach (var w in written)
            _memory.Set(w.Pin, w.Unchanged ?? new PackedIndex(w.Entries));
    }

    // Retiring old generations is housekeeping after the commit: a failure is logged and retried next time.
    private void TryRetireDue(string pipeline)
    {
        try
        {
            RetireDue(pipeline);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Interop.BpfException)
        {
            LogRetireFailed(pipeline, e.Message);
        }
    }

    /// <summary>
    /// Make the configuration-owned maps pinned at <paramref name="pins"/> (by C name) hold exactly the desired
    /// entries, by difference: changed and new keys are written, missing keys deleted (zeroed in an array, whose
    /// elements always exist), equal ones untouched. Returns how many entries changed; <paramref name="undo"/> gets
    /// how to put each map back, <paramref name="written"/> its new contents, to remember once the apply is committed.
    /// </summary>
    private int ReconcileConfigMaps(ChainSpec spec, PlannedPipeline planned, IReadOnlyDictionary<string, BpfMap> maps,
        IReadOnlyDictionary<string, string> pins, List<Action> undo, List<Written> written)
    {
        int changed = 0;
        foreach (var stage in spec.Stages)
            foreach (var map in stage.Maps.Where(m => IsDiffed(m) && pins.ContainsKey(m.CName)))
            {
                var kernel = maps[map.CName];
                var desired = Desired(planned, stage, map);
                string pin = pins[map.CName];
                var zero = new byte[map.Value.Size];
                void Remove(ReadOnlySpan<byte> key)
                {
                    if (map.Schema.Kind == MapKind.Array)
                        kernel.Update(key, zero);
                    else
                        kernel.Delete(key);
                }

                // What the map holds: remembered from this process's last write, or read back from the kernel
                // once. Compared in memory by span (no allocation per entry, which matters for a million), then
                // only the difference is written, in batches.
                var current = _memory.Get(pin);
                if (current is null)
                {
                    progress?.Phase($"reading {map.CName}");
                    current = new PackedIndex(ReadAll(kernel, map.Key.Size, map.Value.Size, skipZero: map.Schema.Kind == MapKind.Array));
                }
                var held = current.Entries;
                var seen = new bool[held.Count];
                var writes = new PackedEntries(map.Key.Size, map.Value.Size);
                // What undo needs: changed entries' old values and the keys that are new.
                var restore = new List<(byte[] Key, byte[] Value)>();
                var added = new PackedEntries(map.Key.Size, map.Value.Size);
                for (int i = 0; i < desired.Count; i++)
                {
                    var key = desired.Key(i);
                    var value = desired.Value(i);
                    int at = current.Find(key);
                    if (at >= 0)
                    {
                        seen[at] = true;
                        if (held.Value(at).SequenceEqual(value))
                            continue;
                        restore.Add((key.ToArray(), held.Value(at).ToArray()));
                    }
                    else
                    {
                        added.Add(key, value);
                    }
                    writes.Add(key, value);
                }
                // Held but not desired. A key held twice (a remembered plan with a duplicate) counts at its last occurrence.
                var deleted = new List<(byte[] Key, byte[] Value)>();
                for (int j = 0; j < held.Count; j++)
                    if (!seen[j] && current.Find(held.Key(j)) == j)
                        deleted.Add((held.Key(j).ToArray(), held.Value(j).ToArray()));
                foreach (var (key, _) in deleted)
                    Remove(key);
                if (writes.Count > 0)
                {
                    progress?.Phase($"writing {map.CName}", writes.Count);
                    kernel.UpdateMany(writes.Keys, writes.Values, writes.Count, done => progress?.Advance(done));
                }
                changed += deleted.Count + writes.Count;
                written.Add(new Written(pin, deleted.Count + writes.Count == 0 ? current : null, desired));
                undo.Add(() =>
                {
                    for (int i = 0; i < added.Count; i++)
                        Remove(added.Key(i));
                    foreach (var (key, value) in restore.Concat(deleted))
                        kernel.Update(key, value);
                });
            }
        return changed;
    }

    // skipZero: for arrays, whose every element exists; an all-zero one counts as absent.
    private static PackedEntries ReadAll(BpfMap map, int keySize, int valueSize, bool skipZero)
    {
        var all = new PackedEntries(keySize, valueSize);
        var value = new byte[valueSize];
        foreach (var key in map.Keys())
            if (map.TryLookup(key, value) && !(skipZero && !value.AsSpan().ContainsAnyExcept((byte)0)))
                all.Add(key, value);
        return all;
    }

    private TcxLink SwapOrAttach(string linkPath, BpfProgram entry, PlannedPipeline planned, PipelineState? live, ref bool attached)
    {
        var config = planned.Config;
        if (File.Exists(linkPath))
        {
            var existing = TcxLink.OpenPinned(linkPath);
            var info = existing.Info;
            if (info.IsOn(planned.Ifindex, config.Hook))
            {
                // Compare-and-swap against the generation we believe is running.
                using var expected = live is null ? null : BpfProgram.OpenPinned(Path.Combine(live.GenerationDirectory, ChainSpec.EntryProgram));
                existing.Update(entry, expected);
                return existing;
            }
            // The hook moved (config changed interface or direction) or the interface is gone:
            // attach the new link first, then let the old one go.
            LogReplacingLink(config.Name, info.Ifindex, info.AttachType);
            existing.Dispose();
            var fresh = NamespaceScope.Run(config.Namespace, () => TcxLink.Attach(entry, planned.Ifindex, config.Hook));
            File.Delete(linkPath);
            fresh.Pin(linkPath);
            attached = true;
            return fresh;
        }
        var link = NamespaceScope.Run(config.Namespace, () => TcxLink.Attach(entry, planned.Ifindex, config.Hook));
        link.Pin(linkPath);
        attached = true;
        return link;
    }

    /// <summary>
    /// Release generations whose grace period is over: fold their counters into the totals, unpin them,
    /// and unpin maps no generation uses any more. Also picks up generations a killed host left behind.
    /// </summary>
    public void RetireDue(string pipeline)
    {
        var state = PipelineState.Load(runtimeDirectory, pipeline);
        string dir = PipelineDirectory(pipeline);
        if (state is null || !Directory.Exists(dir))
            return;
        var now = DateTimeOffset.UtcNow;
        var retiring = state.Retiring.ToList();
        foreach (var d in Directory.GetDirectories(dir, "g*"))
            if (d != state.GenerationDirectory && uint.TryParse(Path.GetFileName(d)[1..], out uint n) && retiring.All(r => r.Generation != n))
                retiring.Add(new RetiringGeneration(n, [], now)); // left by a host that died mid-way
        var totals = state.Retired;
        var keep = new List<RetiringGeneration>();
        foreach (var r in retiring)
        {
            if (r.Due > now)
            {
                keep.Add(r);
                continue;
            }
            string genDir = Path.Combine(dir, $"g{r.Generation}");
            string statsPin = Path.Combine(genDir, ChainSpec.StatsMap);
            if (File.Exists(statsPin) && r.Stages.Count > 0)
            {
                using var stats = BpfMap.OpenPinned(statsPin);
                totals = totals.Add(CounterReader.Read(stats, r.Stages.Count), r.Stages);
            }
            BpfFs.RemoveTree(genDir);
            LogRetired(pipeline, r.Generation);
        }
        if (keep.Count == 0)
        {
            var used = state.Maps.Select(m => m.Pin).ToHashSet();
            string mapsDir = Path.Combine(dir, MapsDirectory);
            if (Directory.Exists(mapsDir))
                foreach (var pin in Directory.GetFiles(mapsDir).Where(p => !used.Contains(p)))
                {
                    File.Delete(pin);
                    _memory.Forget([pin]);
                }
        }
        if (keep.Count != state.Retiring.Count || !ReferenceEquals(totals, state.Retired))
            (state with { Retired = totals, Retiring = keep }).Save(runtimeDirectory);
    }

    /// <summary>Detach a pipeline and remove its pins and state.</summary>
    public void Remove(string pipeline)
    {
        // Where it was deployed (a configuration may have moved bpfRoot since), and where this configuration would put it.
        if (PipelineState.Load(runtimeDirectory, pipeline) is { } state)
            BpfFs.RemoveTree(state.PinDirectory);
        BpfFs.RemoveTree(PipelineDirectory(pipeline));
        File.Delete(PipelineState.FilePath(runtimeDirectory, pipeline));
        LogRemoved(pipeline);
    }

    [LoggerMessage(EventId = 107, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: retiring old generations failed, retried at the next apply: {Error}")]
    private partial void LogRetireFailed(string pipeline, string error);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: {What}")]
    private partial void LogShadowed(string pipeline, string what);

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "pipeline {Pipeline}: generation {Generation} {Action} (link {LinkId}, program {ProgramId}) in {Milliseconds:F1} ms")]
    private partial void LogApplied(string pipeline, uint generation, string action, uint linkId, uint programId, double milliseconds);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: pinned link points at ifindex {Ifindex} type {AttachType}; attaching a new link")]
    private partial void LogReplacingLink(string pipeline, uint ifindex, uint attachType);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "pipeline {Pipeline}: detached and unpinned")]
    private partial void LogRemoved(string pipeline);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "pipeline {Pipeline}: {Changed} map entries changed in place in {Milliseconds:F2} ms (same code, no new generation)")]
    private partial void LogMapsUpdated(string pipeline, int changed, double milliseconds);

    [LoggerMessage(EventId = 104, Level = LogLevel.Debug, Message = "pipeline {Pipeline}: generation {Generation} retired")]
    private partial void LogRetired(string pipeline, uint generation);
}
