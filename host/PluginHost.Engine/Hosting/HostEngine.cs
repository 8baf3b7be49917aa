using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using Microsoft.Extensions.Logging;
using PluginHost.Compile;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Pipelines;
using PluginHost.Plugins;

namespace PluginHost.Hosting;

/// <summary>
/// The host's top level: configuration in, pipelines on their hooks out. Each pass loads the plugins,
/// validates every pipeline before anything is applied (a bad config applies nothing), applies, and
/// unloads the plugins again: no plugin object outlives a pass.
/// </summary>
public sealed partial class HostEngine
{
    /// <summary>How long a swapped-out generation stays pinned: packets already inside it finish there.</summary>
    public static readonly TimeSpan DefaultRetireAfter = TimeSpan.FromSeconds(2);

    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly TimeSpan _retireAfter;
    private readonly List<(WeakReference Context, string Plugins, DateTimeOffset Since)> _unloading = [];
    private PipelineDeployer _deployer;

    public HostEngine(HostConfig config, ILoggerFactory loggers, TimeSpan? retireAfter = null)
    {
        _loggers = loggers;
        _log = loggers.CreateLogger<HostEngine>();
        _retireAfter = retireAfter ?? DefaultRetireAfter;
        Config = config;
        _deployer = NewDeployer(config);
    }

    public HostConfig Config { get; private set; }

    private PipelineDeployer NewDeployer(HostConfig config) => new(config.BpfRoot, config.RuntimeDirectory,
        new ClangCompiler(config.CacheDirectory), _retireAfter, _loggers.CreateLogger<PipelineDeployer>());

    /// <summary>Take a new configuration snapshot for the next apply.</summary>
    public void Reconfigure(HostConfig config)
    {
        // Pipelines that left the configuration are detached only by `uninstall`: dropping traffic is never implicit.
        Config = config;
        _deployer = NewDeployer(config);
    }

    /// <summary>Check the configuration against the plugins and the interfaces; apply nothing.</summary>
    public IReadOnlyList<PlannedPipeline> Validate()
    {
        using var catalog = PluginCatalog.Load(Config.PluginsDirectory);
        return PipelinePlanner.Plan(Config, catalog, _deployer.NextGeneration);
    }

    /// <summary>
    /// Validate everything, then apply each pipeline (attach, swap, change maps in place, or nothing).
    /// The outcome, good or bad, is recorded for <c>status</c>.
    /// </summary>
    public IReadOnlyList<ApplyResult> Apply()
    {
        var history = ReloadHistory.Load(Config.RuntimeDirectory);
        try
        {
            var results = ApplyWithPlugins();
            history.Succeeded(results).Save(Config.RuntimeDirectory);
            return results;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            history.Failed(e.Message).Save(Config.RuntimeDirectory);
            throw;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // keeps the plugins' objects in this frame only
    private IReadOnlyList<ApplyResult> ApplyWithPlugins()
    {
        var catalog = PluginCatalog.Load(Config.PluginsDirectory);
        try
        {
            var planned = PipelinePlanner.Plan(Config, catalog, _deployer.NextGeneration);
            return planned.Select(_deployer.Apply).ToList();
        }
        finally
        {
            foreach (var plugin in catalog.Plugins.Values)
                if (AssemblyLoadContext.GetLoadContext(plugin.Instance.GetType().Assembly) is { } context)
                    _unloading.Add((new WeakReference(context), plugin.Instance.Name, DateTimeOffset.UtcNow));
            catalog.Dispose();
        }
    }

    /// <summary>Retire generations whose grace period is over (call periodically).</summary>
    public void RetireDue()
    {
        foreach (var p in Config.Pipelines)
            _deployer.RetireDue(p.Name);
    }

    /// <summary>
    /// Plugins whose load context is still alive well after they were released: something (a static
    /// event, a thread, a timer) keeps them; each reload then leaks one copy. Reported once each.
    /// </summary>
    public IReadOnlyList<string> CheckUnloaded(TimeSpan patience)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var stuck = new List<string>();
        var now = DateTimeOffset.UtcNow;
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
    public void Uninstall()
    {
        foreach (var p in Config.Pipelines)
            _deployer.Remove(p.Name);
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "plugin {Plugin} was not unloaded {Seconds:F0} s after its reload: something keeps a reference to it (a static event, thread or timer); every reload now leaks a copy")]
    private partial void LogNotUnloaded(string plugin, double seconds);
}
