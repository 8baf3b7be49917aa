using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>
/// Applies planned pipelines to the kernel by the generation-swap protocol, all or nothing:
/// <list type="number">
/// <item><b>Prepare</b> every pipeline: compose, decide (<see cref="GenerationPlan"/>), compile, load, fill the maps,
/// run the canaries, pin the new generation. A failure here undoes this attempt's map changes and unpins what it
/// pinned, in every pipeline: nothing is swapped.</item>
/// <item><b>Commit</b> every pipeline: record the intended state, then one compare-and-swap link update (or the
/// in-place map changes of a pipeline whose code is unchanged). If one is refused, the pipelines already committed
/// are reverted by the same compare-and-swap and the error names where each stands.</item>
/// <item><b>Finish</b>: remember what the maps hold, retire generations whose grace period is over.</item>
/// </list>
/// </summary>
internal sealed partial class PipelineDeployer
{
    public const string LinkPin = GenerationPlan.LinkPin;
    public const string MapsDirectory = GenerationPlan.MapsDirectory;

    private readonly string _bpfRoot;
    private readonly IPipelineStore _store;
    private readonly IDatapathKernel _kernel;
    private readonly IChainCompiler _compiler;
    private readonly TimeSpan _retireAfter;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ApplyProgress? _progress;
    private readonly MapContentsMemory _memory;
    private readonly MapReconciler _reconciler;
    private readonly GenerationRetirer _retirer;
    private readonly LinkSwapper _links;
    private readonly Action<string> _fault;
    private readonly HeldGenerations _held;
    private readonly BankSwitcher _banks;

    internal PipelineDeployer(string bpfRoot, string runtimeDirectory, ClangCompiler compiler, TimeSpan retireAfter,
        ILogger logger, ApplyProgress? progress = null, MapContentsMemory? memory = null, TimeProvider? time = null, HeldGenerations? held = null)
        : this(bpfRoot, new PipelineStore(runtimeDirectory), BpfDatapathKernel.Instance, compiler, retireAfter, time ?? TimeProvider.System,
            logger, progress, memory, FaultPoints.FromEnvironment, held)
    {
    }

    internal PipelineDeployer(string bpfRoot, IPipelineStore store, IDatapathKernel kernel, IChainCompiler compiler, TimeSpan retireAfter,
        TimeProvider time, ILogger logger, ApplyProgress? progress = null, MapContentsMemory? memory = null, Action<string>? faultPoint = null,
        HeldGenerations? held = null)
    {
        _held = held ?? new HeldGenerations();
        _fault = faultPoint ?? FaultPoints.FromEnvironment;
        _bpfRoot = bpfRoot;
        _store = store;
        _kernel = kernel;
        _compiler = compiler;
        _retireAfter = retireAfter;
        _time = time;
        _logger = logger;
        _progress = progress;
        _memory = memory ?? new MapContentsMemory();
        _reconciler = new MapReconciler(_memory, progress);
        _retirer = new GenerationRetirer(bpfRoot, store, kernel, time, _memory, _fault);
        _links = new LinkSwapper(kernel);
        _banks = new BankSwitcher(kernel, _reconciler);
    }

    /// <summary>Grace periods a change of double-buffered maps had to wait for (the rest ran in the background).</summary>
    internal int BankGraceWaits => _banks.GraceWaits;

    /// <summary>Apply one pipeline (see <see cref="ApplyAll"/>).</summary>
    public ApplyResult Apply(PlannedPipeline planned) => ApplyAll([planned]).Single();

    /// <summary>Apply every pipeline of a configuration, all or nothing. <paramref name="beforeCommit"/>, asked once every
    /// pipeline is prepared, can still call the apply off (a reason: the desired state changed meanwhile).</summary>
    public IReadOnlyList<ApplyResult> ApplyAll(IReadOnlyList<PlannedPipeline> pipelines, Func<string?>? beforeCommit = null)
    {
        if (pipelines.Count == 0)
            return [];
        _kernel.EnsureRoot(_bpfRoot);
        var prepared = new List<PreparedGeneration>();
        try
        {
            foreach (var planned in pipelines)
                prepared.Add(Prepare(planned));
        }
        catch
        {
            for (int i = prepared.Count - 1; i >= 0; i--)
                Abort(prepared[i]);
            throw;
        }

        if (beforeCommit?.Invoke() is { } stale)
        {
            for (int i = prepared.Count - 1; i >= 0; i--)
                Abort(prepared[i]);
            throw new StaleDesiredStateException($"apply configuration: not committed: {stale}");
        }

        int committed = 0;
        try
        {
            for (; committed < prepared.Count; committed++)
                Commit(prepared[committed]);
        }
        catch (Exception e)
        {
            throw RevertCommitted(prepared, committed, e);
        }
        return prepared.Select(Finish).ToList();
    }

    // ---- prepare -------------------------------------------------------------------------------------------

    // Everything that can fail before anything goes live. Cleans up after itself when it fails.
    internal PreparedGeneration Prepare(PlannedPipeline planned)
    {
        var watch = Stopwatch.StartNew();
        var spec = ChainComposer.Compose(planned.Plan);
        var composeTime = watch.Elapsed;
        string pipelineDir = Path.Combine(_bpfRoot, planned.Config.Name);
        var recorded = AdoptAttached(planned.Config.Name);
        var plan = GenerationPlan.Decide(planned, spec, _bpfRoot, recorded, _kernel.Exists, _kernel.PinnedGenerations(pipelineDir));
        var prepared = new PreparedGeneration(plan) { Compose = composeTime };
        try
        {
            if (plan.InPlace)
            {
                if (plan.CanariesChanged)
                    Rehearse(prepared);
                return prepared; // its map changes are its commit
            }
            PrepareGeneration(prepared);
            return prepared;
        }
        catch
        {
            Abort(prepared);
            throw;
        }
    }

    // The state file, reconciled with what the pipeline's link actually runs (see GenerationPlan.Adopt).
    private PipelineState? AdoptAttached(string pipeline)
    {
        var recorded = _store.Load(pipeline);
        if (recorded is null)
            return null;
        uint running;
        using (var link = _kernel.OpenLink(Path.Combine(recorded.PinDirectory, GenerationPlan.LinkPin)))
            running = link?.Info.ProgramId ?? 0;
        var (state, adopted) = GenerationPlan.Adopt(recorded, running, pin => _kernel.Exists(pin) ? _kernel.ProgramId(pin) : null, _time.GetUtcNow());
        if (adopted is not null)
        {
            LogAdopted(pipeline, adopted);
            _store.Save(state!);
        }
        return state;
    }

    private void PrepareGeneration(PreparedGeneration prepared)
    {
        var plan = prepared.Plan;
        var watch = Stopwatch.StartNew();
        var compiled = _compiler.Compile(plan.Spec.Source, plan.Name);
        prepared.Compile = watch.Elapsed;
        prepared.CompileCached = compiled.Cached;
        _fault(FaultPoints.AfterCompile);

        watch.Restart();
        var loaded = prepared.Loaded = _kernel.Load(plan.Spec, compiled.ObjectPath, plan.Generation, plan.ReusedPins);
        _fault(FaultPoints.AfterLoad);
        foreach (var decision in plan.Maps.Where(d => !(d.IsBanked && d.Fate == MapFate.Reused)))
            Fill(prepared, decision, loaded.Map(decision.Map.CName));
        SwitchReusedBanks(prepared); // shared with the running generation, like the reused maps above
        prepared.Load = watch.Elapsed;
        _fault(FaultPoints.AfterFill);

        watch.Restart();
        prepared.Canaries = RunCanaries(plan, loaded);
        prepared.Canary = watch.Elapsed;
        _fault(FaultPoints.AfterCanary);

        if (_kernel.Exists(plan.GenerationDirectory))
            _kernel.Remove(plan.GenerationDirectory); // a leftover of a failed attempt with the same number
        prepared.CreatedPins.Add(plan.GenerationDirectory);
        var newPins = plan.Maps.Where(m => m.Fate != MapFate.Reused).ToDictionary(m => m.Map.CName, m => m.Pin);
        prepared.CreatedPins.AddRange(newPins.Values);
        loaded.Pin(plan.GenerationDirectory, newPins);
    }

    private CanaryReport RunCanaries(GenerationPlan plan, ILoadedGeneration loaded)
    {
        var report = ChainRehearsal.RunCanaries(plan, loaded);
        foreach (var shadowed in report.Shadowed)
            LogShadowed(plan.Name, shadowed);
        return report;
    }

    // Same code, but another plugin build than the one whose canaries last ran: they run through a
    // copy of the chain (see ChainRehearsal). The running generation is not touched, so a wrong canary refuses the change
    // before anything of it is live.
    private void Rehearse(PreparedGeneration prepared)
    {
        var rehearsal = ChainRehearsal.Run(_kernel, _compiler, prepared.Plan);
        foreach (var shadowed in rehearsal.Canaries.Shadowed)
            LogShadowed(prepared.Name, shadowed);
        (prepared.CompileCached, prepared.Canaries) = (rehearsal.CompileCached, rehearsal.Canaries);
        (prepared.Compile, prepared.Load, prepared.Canary) = (rehearsal.Compile, rehearsal.Load, rehearsal.Canary);
    }

    // A new generation's map: fresh config maps written whole, migrated state converted, reused config maps changed by difference.
    private void Fill(PreparedGeneration prepared, MapDecision decision, IMapAccess map)
    {
        using (map)
        {
            switch (decision.Fate)
            {
                case MapFate.Fresh when decision.Desired is { } desired:
                    if (desired.Count > 0)
                        map.UpdateMany(desired);
                    if (decision.IsDiffed)
                        prepared.WrittenWhole.Add((decision.Pin, desired));
                    break;
                case MapFate.Migrated:
                    Migrate(prepared.Plan, decision, map);
                    break;
                case MapFate.Reused when decision.IsDiffed:
                    // The map is shared with the running generation: the change is undone if this apply does not commit.
                    ReconcileLive(prepared, decision);
                    break;
            }
        }
    }

    // Each stage's reused double-buffered maps, changed as one (a stage's group is all reused or all fresh).
    private void SwitchReusedBanks(PreparedGeneration prepared)
    {
        foreach (var group in prepared.Plan.Maps.Where(d => d.IsBanked && d.Fate == MapFate.Reused).GroupBy(d => d.Stage.Index))
            _banks.Switch(prepared, group.ToList());
    }

    // A live map (pinned, used by the running generation) changed by difference; kept open for its undo.
    private void ReconcileLive(PreparedGeneration prepared, MapDecision decision)
    {
        prepared.TouchedPins.Add(decision.Pin);
        var map = _kernel.OpenMap(decision.Pin);
        prepared.OpenedMaps.Add(map);
        prepared.Changes.Add(_reconciler.Reconcile(decision, map));
    }

    private void Migrate(GenerationPlan plan, MapDecision decision, IMapAccess target)
    {
        var old = decision.Old!;
        var migrate = plan.Planned.Plan.Stages[decision.Stage.Index].Migrate!;
        var oldKey = StructLayout.Compute("old_key", old.Schema.Key);
        var oldValue = StructLayout.Compute("old_value", old.Schema.Value);
        using var source = _kernel.OpenMap(old.Pin);
        var entries = source.ReadAll(oldKey.Size, oldValue.Size, skipZero: false);
        for (int i = 0; i < entries.Count; i++)
        {
            var converted = migrate(old.Schema, decision.Map.Schema,
                new MapEntry(decision.Map.Schema.Name, oldKey.Decode(entries.Key(i)), oldValue.Decode(entries.Value(i))));
            if (converted is not null)
                target.Update(decision.Map.Key.Encode(converted.Key), decision.Map.Value.Encode(converted.Value));
        }
    }

    // ---- commit --------------------------------------------------------------------------------------------

    // Makes a prepared pipeline live. On failure it leaves the pipeline as it was before the commit.
    internal void Commit(PreparedGeneration prepared)
    {
        var plan = prepared.Plan;
        var watch = Stopwatch.StartNew();
        if (plan.InPlace)
        {
            try
            {
                foreach (var decision in plan.Maps.Where(m => m.IsDiffed && !m.IsBanked))
                    ReconcileLive(prepared, decision);
                SwitchReusedBanks(prepared);
                // What the canaries checked, and the plugin builds that now run, for status and the next apply.
                if (plan.CanariesChanged)
                    _store.Save(plan.Live! with { CanaryKey = plan.CanaryKey, CanariesPassed = prepared.Canaries.Checked, Stages = plan.StageStates() });
            }
            catch
            {
                prepared.UndoMapChanges();
                throw;
            }
            prepared.Kind = prepared.EntriesChanged == 0 ? ApplyKind.Unchanged : ApplyKind.MapsUpdated;
            prepared.Committed = true;
            return;
        }

        // The intended generation is recorded before the link moves: a host killed in between finds the state
        // naming a generation that is pinned, and the retirer never unpins what a link runs.
        _store.Save(plan.NextState(_time.GetUtcNow(), _retireAfter) with { CanariesPassed = prepared.Canaries.Checked });
        _fault(FaultPoints.AfterStateWrite);
        try
        {
            prepared.Kind = _links.Swap(prepared, info => LogReplacingLink(plan.Name, info.Ifindex, info.AttachType));
        }
        catch
        {
            RestoreState(plan);
            throw;
        }
        _fault(FaultPoints.AfterLinkUpdate);
        prepared.Swap = watch.Elapsed;
        prepared.Committed = true;
    }

    private void RestoreState(GenerationPlan plan)
    {
        if (plan.Recorded is null)
            _store.Delete(plan.Name);
        else
            _store.Save(plan.Recorded);
    }

    // Pipelines [0, committed) are live; pipeline [committed] failed its commit and is as it was. Put the live ones
    // back, newest first, and say where each pipeline stands.
    private CommitFailedException RevertCommitted(List<PreparedGeneration> prepared, int committed, Exception failure)
    {
        var outcomes = new List<string>();
        bool unchanged = true;
        for (int i = committed - 1; i >= 0; i--)
        {
            var p = prepared[i];
            try
            {
                Revert(p);
                outcomes.Add(p.Plan.InPlace ? $"pipeline {p.Name}: map changes undone"
                    : p.Plan.Live is null ? $"pipeline {p.Name}: detached again (it was not attached before)"
                    : $"pipeline {p.Name}: back on generation {p.Plan.Live.Generation}");
            }
            catch (Exception e)
            {
                unchanged = false;
                outcomes.Add($"pipeline {p.Name}: generation {p.Plan.Generation} stays live, putting back the previous one failed: {e.Message}");
            }
        }
        outcomes.Add($"pipeline {prepared[committed].Name}: unchanged (its commit failed)");
        for (int i = committed + 1; i < prepared.Count; i++)
            outcomes.Add($"pipeline {prepared[i].Name}: unchanged (not committed)");

        for (int i = prepared.Count - 1; i >= 0; i--)
        {
            if (prepared[i].Committed)
                Finish(prepared[i]); // a revert that failed: that generation is live and kept
            else
                Abort(prepared[i]);
        }
        outcomes.Reverse(0, committed);
        return new CommitFailedException($"apply configuration: commit pipeline {prepared[committed].Name}: {failure.Message}\n" +
            string.Join('\n', outcomes.Select(o => "  " + o)), outcomes, unchanged, failure);
    }

    // Undo a commit: the link goes back to the previous generation by the same compare-and-swap.
    private void Revert(PreparedGeneration prepared)
    {
        var plan = prepared.Plan;
        if (plan.InPlace)
        {
            prepared.UndoMapChanges();
            prepared.Committed = false;
            return;
        }
        _links.SwapBack(prepared);
        prepared.Committed = false;
        RestoreState(plan);
    }

    // ---- abort / finish ------------------------------------------------------------------------------------

    // Remove everything a prepared (not committed) attempt created.
    private void Abort(PreparedGeneration prepared)
    {
        // What this attempt wrote into live maps is undone below, but a failed undo would leave them unlike the memory.
        _memory.Forget(prepared.TouchedPins);
        try
        {
            prepared.UndoMapChanges();
            foreach (var pin in prepared.CreatedPins)
                if (_kernel.Exists(pin))
                    _kernel.Remove(pin);
        }
        finally
        {
            prepared.Dispose();
        }
    }

    private ApplyResult Finish(PreparedGeneration prepared)
    {
        var plan = prepared.Plan;
        try
        {
            foreach (var change in prepared.Changes)
                _memory.Set(change.Pin, change.Unchanged ?? new PackedIndex(change.Now));
            foreach (var (pin, entries) in prepared.WrittenWhole)
                _memory.Set(pin, new PackedIndex(entries));
            prepared.ReplacedLink?.Dispose(); // the old hook's link: closed and unpinned, so detached
            prepared.ReplacedLink = null;
            TryRetireDue(plan.Name);
            TryAudit(plan.Name);
            var info = _kernel.OpenLink(plan.LinkPath) is { } link ? Read(link) : new TcxLinkInfo(0, 0, 0, 0);
            var kind = prepared.Kind;
            int canaries = prepared.Canaries.Checked;
            if (kind is ApplyKind.Swapped or ApplyKind.Attached)
                LogApplied(plan.Name, plan.Generation, kind.ToString().ToLowerInvariant(), info.LinkId, info.ProgramId, prepared.Total.Elapsed.TotalMilliseconds, canaries);
            else if (kind == ApplyKind.MapsUpdated)
                LogMapsUpdated(plan.Name, prepared.EntriesChanged, prepared.Total.Elapsed.TotalMilliseconds,
                    plan.CanariesChanged ? $"; {canaries} canaries passed" : "");
            else if (plan.CanariesChanged)
                LogCanariesChecked(plan.Name, canaries);
            return new ApplyResult(plan.Name, kind, plan.Generation, info.LinkId, info.ProgramId, prepared.EntriesChanged,
                prepared.CompileCached, prepared.Canaries.Checked, prepared.Compose, prepared.Compile, prepared.Load, prepared.Canary,
                prepared.Swap, prepared.Total.Elapsed) { Shadowed = prepared.Canaries.Shadowed };
        }
        finally
        {
            prepared.Dispose();
        }

        static TcxLinkInfo Read(ILinkAccess link)
        {
            using (link)
                return link.Info;
        }
    }

    // ---- retire / remove -----------------------------------------------------------------------------------

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
    /// Release generations whose grace period is over: fold their counters into the totals, unpin them, and unpin
    /// maps no generation uses any more. Also picks up generations a killed host left behind. Never one a link runs.
    /// </summary>
    public void RetireDue(string pipeline)
    {
        foreach (var generation in _retirer.RetireDue(pipeline))
            LogRetired(pipeline, generation);
    }

    private void TryAudit(string pipeline)
    {
        try
        {
            Audit(pipeline);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Interop.BpfException)
        {
            LogPinsLost(pipeline, $"audit failed: {e.Message}");
        }
    }

    /// <summary>
    /// Check the pins <paramref name="pipeline"/>'s running generation needs; pin again, from the fds this host holds,
    /// any that went missing (removed by hand: the prog array would empty, the link detach), and report what cannot be.
    /// Runs after every apply and periodically. Returns the pins restored.
    /// </summary>
    public IReadOnlyList<string> Audit(string pipeline)
    {
        var state = _store.Load(pipeline);
        if (state is null)
        {
            _held.Release(pipeline); // uninstalled (perhaps by another process): what this host holds must not keep it attached
            return [];
        }
        if (!_kernel.Exists(state.EntryPin) && !_held.Holds(pipeline, state.Generation))
            return [];
        var held = _held.For(pipeline, state.Generation, () => _kernel.Hold(state));
        var restored = held.Restore();
        foreach (var pin in restored)
            LogPinRestored(pipeline, pin);
        var lost = held.Lost();
        if (lost.Count > 0)
            LogPinsLost(pipeline, string.Join(", ", lost));
        return restored;
    }

    /// <summary>Detach a pipeline and remove its pins and state.</summary>
    public void Remove(string pipeline)
    {
        _held.Release(pipeline); // a link the host holds an fd on would stay attached
        // The state goes first: a running host's audit restores pins only while a state names them.
        var state = _store.Load(pipeline);
        _store.Delete(pipeline);
        // Where it was deployed (a configuration may have moved bpfRoot since), and where this configuration would put it.
        if (state is not null && _kernel.Exists(state.PinDirectory))
            _kernel.Remove(state.PinDirectory);
        string dir = Path.Combine(_bpfRoot, pipeline);
        if (_kernel.Exists(dir))
            _kernel.Remove(dir);
        LogRemoved(pipeline);
    }

    [LoggerMessage(EventId = 109, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: pin {Pin} was missing: pinned again from the fd the host holds")]
    private partial void LogPinRestored(string pipeline, string pin);

    [LoggerMessage(EventId = 110, Level = LogLevel.Error, Message = "pipeline {Pipeline}: pins missing and not held by this host, the running generation may bypass stages (reload to rebuild it): {Pins}")]
    private partial void LogPinsLost(string pipeline, string pins);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: {What}")]
    private partial void LogAdopted(string pipeline, string what);

    [LoggerMessage(EventId = 107, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: retiring old generations failed, retried at the next apply: {Error}")]
    private partial void LogRetireFailed(string pipeline, string error);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: {What}")]
    private partial void LogShadowed(string pipeline, string what);

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "pipeline {Pipeline}: generation {Generation} {Action} (link {LinkId}, program {ProgramId}) in {Milliseconds:F1} ms; {Canaries} canaries passed")]
    private partial void LogApplied(string pipeline, uint generation, string action, uint linkId, uint programId, double milliseconds, int canaries);

    [LoggerMessage(EventId = 111, Level = LogLevel.Information, Message = "pipeline {Pipeline}: {Canaries} canaries passed (a new plugin build, same code and entries: nothing to swap)")]
    private partial void LogCanariesChecked(string pipeline, int canaries);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: pinned link points at ifindex {Ifindex} type {AttachType}; attaching a new link")]
    private partial void LogReplacingLink(string pipeline, uint ifindex, uint attachType);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "pipeline {Pipeline}: detached and unpinned")]
    private partial void LogRemoved(string pipeline);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "pipeline {Pipeline}: {Changed} map entries changed in place in {Milliseconds:F2} ms (same code, no new generation){Canaries}")]
    private partial void LogMapsUpdated(string pipeline, int changed, double milliseconds, string canaries);

    [LoggerMessage(EventId = 104, Level = LogLevel.Debug, Message = "pipeline {Pipeline}: generation {Generation} retired")]
    private partial void LogRetired(string pipeline, uint generation);
}
