using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using Microsoft.Extensions.Logging;
using PluginHost.Compile;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Pipelines;
using PluginHost.Contract;
using PluginHost.Plugins;
using PluginHost.Runtime;

namespace PluginHost.Hosting;

/// <summary>
/// The host's top level: configuration in, pipelines on their hooks out. Each pass validates every
/// pipeline against the plugins before anything is applied (a bad config applies nothing), then applies.
/// Plugins stay loaded while the plugins directory is unchanged; host state keeps only copies of what
/// they returned.
/// </summary>
public sealed partial class HostEngine
{
    /// <summary>How long a swapped-out generation stays pinned: packets already inside it finish there.</summary>
    public static readonly TimeSpan DefaultRetireAfter = TimeSpan.FromSeconds(2);

    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly TimeSpan _retireAfter;
    private readonly TimeProvider _time;
    private readonly List<(WeakReference Context, string Plugins, DateTimeOffset Since)> _unloading = [];
    private readonly PluginCatalogCache _plugins;
    private readonly MapContentsMemory _mapContents = new();
    private readonly HeldGenerations _held = new();
    private readonly LastGoodStages _lastGood = new();
    private PipelineDeployer _deployer;
    private volatile IReadOnlyList<Observe.ItemCounterSite> _itemSites = []; // of the last apply that succeeded

    public HostEngine(HostConfig config, ILoggerFactory loggers, TimeSpan? retireAfter = null, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _loggers = loggers;
        _log = loggers.CreateLogger<HostEngine>();
        _retireAfter = retireAfter ?? DefaultRetireAfter;
        _plugins = new PluginCatalogCache(loggers.CreateLogger<PluginCatalogCache>());
        Config = config;
        _deployer = NewDeployer(config);
        Interfaces = new InterfaceTracking(loggers.CreateLogger<InterfaceTracking>());
        Probes = new Health.HealthProbes(loggers.CreateLogger<Health.HealthProbes>(), _time);
    }

    public HostConfig Config { get; private set; }

    /// <summary>The interfaces the last apply used and the routes it withdrew (for the interface watcher and <c>status</c>).</summary>
    public InterfaceTracking Interfaces { get; }

    /// <summary>The health probes the last apply declared and their states (for the prober, the plugins and <c>status</c>).</summary>
    public Health.HealthProbes Probes { get; }

    private PipelineDeployer NewDeployer(HostConfig config) => new(config.BpfRoot, config.RuntimeDirectory,
        new ClangCompiler(config.CacheDirectory), _retireAfter, _loggers.CreateLogger<PipelineDeployer>(), progress: Progress, memory: _mapContents, time: _time, held: _held);

    /// <summary>
    /// Forget what the configuration maps were last written with, so the next apply reads them back from the
    /// kernel and puts back anything changed behind the host's back (an operator's reload does this).
    /// </summary>
    public void ForgetMapContents() => _mapContents.ForgetAll();

    /// <summary>An operator's reload: read the configuration again and apply it, reading the maps back from the kernel.</summary>
    public IReadOnlyList<ApplyResult> Reload(string configPath)
    {
        Reconfigure(ConfigLoader.Load(configPath));
        ForgetMapContents();
        return Apply();
    }

    /// <summary>What the apply in progress is doing (for progress bars).</summary>
    public ApplyProgress Progress { get; } = new();

    /// <summary>Take a new configuration snapshot for the next apply.</summary>
    public void Reconfigure(HostConfig config)
    {
        // Pipelines that left the configuration are detached only by `uninstall`: dropping traffic is never implicit.
        var previous = Config;
        Config = config;
        _deployer = NewDeployer(config);
        if (previous.PluginsDirectory != config.PluginsDirectory)
            PluginsDirectoryChanged?.Invoke(config.PluginsDirectory);
    }

    /// <summary>Raised when a new configuration names another plugins directory (the watcher follows it).</summary>
    public event Action<string>? PluginsDirectoryChanged;

    /// <summary>The desired-state file that keeps runtime changes, beside the configuration.</summary>
    public string OverlayPath => RuntimeOverlay.PathFor(Config.SourcePath);

    /// <summary>Check the configuration (with runtime changes) against the plugins and the interfaces; apply nothing.</summary>
    public IReadOnlyList<PlannedPipeline> Validate()
    {
        var effective = RuntimeOverlay.Load(OverlayPath).ApplyTo(Config);
        return WithPlugins(catalog => PipelinePlanner.Plan(effective, catalog));
    }

    /// <summary>
    /// Validate everything, then apply each pipeline (attach, swap, change maps in place, or nothing).
    /// The outcome, good or bad, is recorded for <c>status</c>.
    /// </summary>
    public IReadOnlyList<ApplyResult> Apply() => Apply(RuntimeOverlay.Load(OverlayPath).ApplyTo(Config));

    /// <summary>Raised after every apply with its duration and its error (null on success); feeds /metrics.</summary>
    public event Action<TimeSpan, Exception?>? Applied;

    // effective: the configuration with the runtime changes applied; catalog: the plugins a command already looked at.
    private IReadOnlyList<ApplyResult> Apply(HostConfig effective, PluginCatalog? catalog = null)
    {
        var history = ReloadHistory.Load(Config.RuntimeDirectory);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Progress.Phase("validating");
        try
        {
            IReadOnlyList<PlannedPipeline> planned = [];
            // What the files said when this apply began: checked again before anything commits, so an apply that took
            // long (a slow plugin, a large table) never puts a configuration in place that was replaced meanwhile.
            string desired = DesiredStamp();
            var calls = new PluginCalls(Config.RuntimeDirectory, Config.PluginCallTimeout);
            IReadOnlyList<ApplyResult> Deploy(PluginCatalog plugins)
            {
                planned = PipelinePlanner.Plan(effective, plugins, calls, _lastGood, Probes);
                Interfaces.Returning(Config.RuntimeDirectory, planned);
                return _deployer.ApplyAll(planned, beforeCommit: () => DesiredStamp() == desired ? null
                    : $"{Config.SourcePath} or its runtime changes were rewritten during the apply; the newer configuration is applied next");
            }
            var results = catalog is null ? WithPlugins(Deploy) : Deploy(catalog);
            history.Succeeded(results).Save(Config.RuntimeDirectory);
            if (history.Failing)
                LogFailureCleared(history.LastFailureAt!.Value, history.LastFailure ?? "");
            Interfaces.Applied(Config.RuntimeDirectory, planned);
            Probes.Applied(Config.RuntimeDirectory, planned);
            _itemSites = Observe.ItemCounterSite.Of(planned);
            // Dropping traffic is never implicit: say what still runs without a configuration.
            foreach (var name in Unconfigured())
                LogUnconfigured(name, Config.SourcePath);
            Applied?.Invoke(watch.Elapsed, null);
            return results;
        }
        catch (Exception e)
        {
            if (e is OutOfMemoryException)
                GC.Collect(); // room to record the failure; the loop goes on with the running datapath
            history.Failed(e.Message).Save(Config.RuntimeDirectory);
            Applied?.Invoke(watch.Elapsed, e);
            throw;
        }
        finally
        {
            Progress.Idle();
        }
    }

    // The desired state on disk: the configuration file and the runtime changes kept beside it.
    private string DesiredStamp()
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var path in new[] { Config.SourcePath, OverlayPath })
            if (File.Exists(path))
                hash.AppendData(File.ReadAllBytes(path));
        return Convert.ToHexString(hash.GetCurrentHash());
    }

    /// <summary>
    /// The process is about to die of <paramref name="crash"/> (an unhandled exception): when a loaded plugin's code threw
    /// it, record that, so the next host quarantines the build rather than crash again. Returns the plugin, if any.
    /// </summary>
    public string? RecordCrash(Exception? crash)
    {
        if (crash is null || _plugins.Current is not { } catalog)
            return null;
        var thrower = new System.Diagnostics.StackTrace(crash).GetFrames().Select(f => f.GetMethod()?.DeclaringType?.Assembly)
            .Prepend(crash.TargetSite?.DeclaringType?.Assembly).Where(a => a is not null).ToHashSet();
        foreach (var (name, plugin) in catalog.Plugins)
            if (thrower.Contains(plugin.Instance.GetType().Assembly))
            {
                new PluginCalls(Config.RuntimeDirectory, Config.PluginCallTimeout)
                    .RecordCrash(PluginCalls.Build(name, plugin.AssemblyPath), $"own thread ({crash.GetType().Name})");
                return name;
            }
        return null;
    }

    /// <summary>
    /// At the start of a running host: plugin calls a previous host died in (it left their in-flight records) put
    /// those plugin builds in quarantine; returns them.
    /// </summary>
    public IReadOnlyList<QuarantinedPlugin> QuarantineLeftovers()
    {
        var found = new PluginCalls(Config.RuntimeDirectory, Config.PluginCallTimeout).QuarantineLeftovers(_time.GetUtcNow());
        foreach (var q in found)
            LogQuarantined(q.Plugin, q.Call, q.Sha256);
        return found;
    }

    // Only the plugins the configuration names are loaded (and only once trusted); they stay loaded while their files are
    // unchanged; a replaced set is released and then watched until it is collected. Host state keeps only copies of what
    // the plugins returned.
    private T WithPlugins<T>(Func<PluginCatalog, T> work)
    {
        var catalog = _plugins.Get(Config.PluginsDirectory, PluginCatalog.NamesIn(Config), out var replaced);
        if (replaced is not null)
            ReleaseCatalog(replaced);
        return work(catalog);
    }

    /// <summary>Unload the plugins now (host shutdown, tests); the next apply loads them again.</summary>
    public void ReleasePlugins()
    {
        if (_plugins.Release() is { } catalog)
            ReleaseCatalog(catalog);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // no plugin object may stay on this frame
    private void ReleaseCatalog(PluginCatalog catalog)
    {
        _lastGood.Clear(); // plans keep their plugin's migration delegate alive
        foreach (var plugin in catalog.Plugins.Values)
            if (AssemblyLoadContext.GetLoadContext(plugin.Instance.GetType().Assembly) is { } context)
                _unloading.Add((new WeakReference(context), plugin.Name, _time.GetUtcNow()));
        catalog.Dispose();
    }

    /// <summary>
    /// Run a plugin's runtime command (<c>route add</c>, ...): validated through the plugin like configuration,
    /// applied to the maps in place, and kept in the desired-state file only once applied.
    /// </summary>
    public CommandResult RunCommand(CommandRequest request)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // One look at the plugin files serves the command's lookup and its apply.
        return WithPlugins(catalog => RunCommand(request, clock, catalog));
    }

    private CommandResult RunCommand(CommandRequest request, System.Diagnostics.Stopwatch clock, PluginCatalog catalog)
    {
        var overlay = RuntimeOverlay.Load(OverlayPath);
        var effective = overlay.ApplyTo(Config);
        var target = CommandRunner.Find(effective, catalog, request);
        var command = target.Command;
        var current = CommandRunner.Items(effective, target);
        if (command.Action == RuntimeAction.List)
        {
            if (request.Stats)
                current = WithCounts(current, command.Key, target.Pipeline.Name, target.StageIndex, effective, catalog);
            return new CommandResult(target.Pipeline.Name, target.StageIndex, $"{current.Count} {command.Collection}", current, null, 0, clock.Elapsed.TotalMilliseconds);
        }

        RuntimeOverlay candidate;
        if (command.Action == RuntimeAction.Set)
        {
            var item = CommandRunner.Item(command, request.Arguments);
            candidate = overlay.With(target.Pipeline.Name, target.Instance, command.Collection, "", "value", new() { ["value"] = item[command.Key] });
        }
        else if (command.Action == RuntimeAction.Add)
        {
            var item = CommandRunner.Item(command, request.Arguments);
            candidate = overlay.With(target.Pipeline.Name, target.Instance, command.Collection, command.Key, item[command.Key], item);
        }
        else
        {
            string key = CommandRunner.Item(command, request.Arguments)[command.Key];
            if (current.All(i => i.GetValueOrDefault(command.Key) != key))
                throw new CommandException($"run '{command.Noun} {command.Verb}': no item with {command.Key} '{key}' in pipeline {target.Pipeline.Name} stage {target.StageIndex}");
            candidate = overlay.With(target.Pipeline.Name, target.Instance, command.Collection, command.Key, key, null);
        }
        var changed = candidate.ApplyTo(Config);
        ApplyResult applied;
        try
        {
            applied = Apply(changed, catalog).Single(r => r.Pipeline == target.Pipeline.Name);
        }
        catch (ConfigException e)
        {
            // The operator ran a command, not a reload: say which one was refused.
            throw new ConfigException(e.Errors, $"run '{command.Noun} {command.Verb}'");
        }
        candidate.Save(OverlayPath);
        var after = CommandRunner.Items(changed, target);
        return new CommandResult(target.Pipeline.Name, target.StageIndex,
            $"{command.Noun} {command.Verb}: {Describe(applied.Kind)}, {applied.EntriesChanged} map entr{(applied.EntriesChanged == 1 ? "y" : "ies")} changed" +
            (Interfaces.Describe(target.Pipeline.Name) is { } withdrawn ? $" (the kernel routes packets of withdrawn routes: {withdrawn})" : ""),
            after, applied.Kind, applied.EntriesChanged, clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>
    /// The plugins in the plugins directory: those the configuration names (loaded, with their runtime commands, or failed,
    /// with why) and the others (not loaded; with what would fail); from copies taken at load, so a broken plugin cannot fail it.
    /// </summary>
    public PluginListing ListPlugins() => WithPlugins(catalog => new PluginListing(
        catalog.Plugins.Values.Select(p => new PluginInfo(p.Name, p.Description, p.AssemblyPath, p.Version, p.Commands))
            .Concat(catalog.Failed.Select(f => new PluginInfo(f.Key, "", Path.Combine(catalog.Directory, f.Key, f.Key + ".dll"), "", []) { State = "failed", Error = f.Value }))
            .Concat(catalog.Unused.Select(u => new PluginInfo(u.Name, "", u.AssemblyPath, "", []) { State = "unused", Error = u.Problem }))
            .OrderBy(p => p.Name, StringComparer.Ordinal).ToList(),
        catalog.Errors.ToList()));

    /// <summary>
    /// Every named item's counters (rules, backends) in the running datapath, as the last successful apply of this host
    /// located them; empty before one. For <c>/metrics</c>.
    /// </summary>
    public IReadOnlyList<Observe.ItemCount> ItemCounts() => Observe.ItemCounts.Read(Config.RuntimeDirectory, _itemSites, BpfDatapathKernel.Instance);

    // A list with its items' counters: located by this host's last apply, or (a CLI without a running host) by planning now.
    private List<IReadOnlyDictionary<string, string>> WithCounts(List<IReadOnlyDictionary<string, string>> items, string key, string pipeline, int stage,
        HostConfig effective, PluginCatalog catalog)
    {
        var sites = _itemSites.Where(s => s.Pipeline == pipeline && s.Stage == stage).ToList();
        if (sites.Count == 0)
            sites = Observe.ItemCounterSite.Of(PipelinePlanner.Plan(effective, catalog))
                .Where(s => s.Pipeline == pipeline && s.Stage == stage).ToList();
        var counts = Observe.ItemCounts.Read(Config.RuntimeDirectory, sites, BpfDatapathKernel.Instance).ToDictionary(c => c.Item);
        var further = sites.SelectMany(s => s.Counter.Fields).Distinct().ToList();
        return items.Select(item =>
        {
            var count = item.TryGetValue(key, out var name) ? counts.GetValueOrDefault(name) : null;
            string Text(ulong? value) => value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-";
            var row = new Dictionary<string, string>(item) { ["packets"] = Text(count?.Packets), ["bytes"] = Text(count?.Bytes) };
            foreach (var field in further)
                row[field] = Text(count?.Fields.Where(f => f.Name == field).Select(f => (ulong?)f.Value).FirstOrDefault());
            return (IReadOnlyDictionary<string, string>)row;
        }).ToList();
    }

    private static string Describe(ApplyKind kind) => kind switch
    {
        ApplyKind.MapsUpdated => "applied as map updates",
        ApplyKind.Swapped => "applied as a new generation",
        ApplyKind.Attached => "attached",
        _ => "nothing to change",
    };

    /// <summary>Retire generations whose grace period is over (call periodically).</summary>
    public void RetireDue()
    {
        foreach (var p in Config.Pipelines)
            _deployer.RetireDue(p.Name);
    }

    /// <summary>Check every configured pipeline's pins and restore missing ones from the fds this host holds (call periodically).</summary>
    public IReadOnlyList<string> Audit() => Config.Pipelines.SelectMany(p => _deployer.Audit(p.Name)).ToList();

    /// <summary>
    /// Plugins whose load context is still alive well after they were released: something (a static
    /// event, a thread, a timer) keeps them; each reload then leaks one copy. Reported once each.
    /// </summary>
    public IReadOnlyList<string> CheckUnloaded(TimeSpan patience)
    {
        if (_unloading.Count == 0)
            return []; // nothing to wait for: no forced collection on an idle host
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var stuck = new List<string>();
        var now = _time.GetUtcNow();
        for (int i = _unloading.Count - 1; i >= 0; i--)
        {
            var (context, plugin, since) = _unloading[i];
            if (!context.IsAlive)
                _unloading.RemoveAt(i);
            else if (now - since > patience)
            {
                stuck.Add(plugin);
                LogNotUnloaded(plugin, (now - since).TotalSeconds);
                _unloading.RemoveAt(i);
            }
        }
        return stuck;
    }

    /// <summary>Load contexts of released plugins not yet seen collected.</summary>
    public int PendingUnloads => _unloading.Count;

    /// <summary>Detach and unpin every configured pipeline.</summary>
    public void Uninstall() => Uninstall(null);

    /// <summary>
    /// Detach and unpin the named pipelines, configured or not (a pipeline dropped from the configuration stays
    /// attached until this), or every configured one when <paramref name="pipelines"/> is null. Returns what was removed.
    /// </summary>
    public IReadOnlyList<string> Uninstall(IReadOnlyCollection<string>? pipelines)
    {
        var names = pipelines?.ToList() ?? Config.Pipelines.Select(p => p.Name).ToList();
        if (pipelines is not null)
        {
            var deployed = PipelineState.LoadAll(Config.RuntimeDirectory).Select(s => s.Name).ToHashSet();
            var unknown = names.Where(n => !deployed.Contains(n) && Config.Pipelines.All(p => p.Name != n)).ToList();
            if (unknown.Count > 0)
                throw new CommandException($"uninstall pipeline {string.Join(", ", unknown)}: not deployed and not configured " +
                    $"(deployed: {(deployed.Count == 0 ? "none" : string.Join(", ", deployed.Order()))})");
        }
        foreach (var name in names)
            _deployer.Remove(name);
        _mapContents.ForgetAll();
        return names;
    }

    /// <summary>Pipelines deployed (per the runtime directory) that the configuration no longer names: they keep forwarding until uninstalled.</summary>
    public IReadOnlyList<string> Unconfigured() => Unconfigured(Config);

    public static IReadOnlyList<string> Unconfigured(HostConfig config) =>
        PipelineState.LoadAll(config.RuntimeDirectory).Select(s => s.Name).Where(n => config.Pipelines.All(p => p.Name != n)).Order().ToList();

    [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "the reload failure of {Since:u} cleared: this apply succeeded (it was: {Error})")]
    private partial void LogFailureCleared(DateTimeOffset since, string error);

    [LoggerMessage(EventId = 202, Level = LogLevel.Error, Message = "plugin {Plugin} is quarantined: the previous host died in its {Call} (build sha256 {Sha256}); stages using it keep what runs until a new build is dropped in")]
    private partial void LogQuarantined(string plugin, string call, string sha256);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "pipeline {Pipeline} is deployed but no longer configured: it keeps forwarding; `pluginhost uninstall --config {Config} --pipeline {Pipeline}` removes it")]
    private partial void LogUnconfigured(string pipeline, string config);

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "plugin {Plugin} was not unloaded {Seconds:F0} s after its reload: something keeps a reference to it (a static event, thread or timer); every reload now leaks a copy")]
    private partial void LogNotUnloaded(string plugin, double seconds);
}

/// <summary>What <c>plugins list</c> shows; host-owned copies, nothing of the plugins kept.</summary>
public sealed record PluginListing(IReadOnlyList<PluginInfo> Plugins, IReadOnlyList<string> Errors);

public sealed record PluginInfo(string Name, string Description, string Assembly, string Version, IReadOnlyList<RuntimeCommand> Commands)
{
    /// <summary>"loaded"; "failed" (named by the configuration, not loaded: <see cref="Error"/> says why); "unused" (not named, not loaded).</summary>
    public string State { get; init; } = "loaded";

    /// <summary>Why it failed to load, or (unused) why it would.</summary>
    public string? Error { get; init; }
}
