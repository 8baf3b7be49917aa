using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using PluginHost.Config;
using PluginHost.Control;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Net;

namespace PluginHost.Cli.Daemon;

/// <summary>
/// A running host: the first apply, then the reconciler loop with everything that feeds it or watches it —
/// the change watcher (re-created when the plugins directory changes), the interface watcher, the prober, SIGINT/SIGTERM (stop) and SIGHUP
/// (reload), the control API, metrics, the unload check, the pid file and systemd's READY notification; the runtime
/// directory's lock (<see cref="RuntimeLock"/>) is taken before all of it and released after.
/// What started is stopped in reverse order, whether the host stops or fails to start.
/// </summary>
internal sealed class RunningHost(string configPath, bool detachOnExit, ILoggerFactory loggers)
{
    /// <summary>First check for plugins that a reload released but something keeps alive, then every interval.</summary>
    private static readonly TimeSpan UnloadCheckInterval = TimeSpan.FromSeconds(10);

    /// <summary>How long a released plugin set may take to be collected before it is reported.</summary>
    private static readonly TimeSpan UnloadPatience = TimeSpan.FromSeconds(30);

    private readonly ILogger _log = loggers.CreateLogger("pluginhost");

    /// <summary>How long SIGTERM waits for the host to stop cleanly before the process ends regardless.</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Apply the configuration, then follow changes until <paramref name="stop"/>, SIGINT or SIGTERM. A failed first
    /// apply, or anything that fails to start, stops the host with the exception (the pinned datapath, if any,
    /// is left as it was). Returns the exit code.
    /// </summary>
    public async Task<int> RunAsync(CancellationToken stop)
    {
        var hostConfig = ConfigLoader.Load(configPath);
        // What validate checks of the machine (bpffs, api.group, addresses, directories): refused before anything is applied.
        HostChecks.Require(hostConfig);
        // Before anything is applied, served or pinned: a second host on this directory would take over the socket
        // and the datapath of the first, which would keep running unmanaged. Held until the host has stopped.
        using var runtimeLock = RuntimeLock.TryAcquire(hostConfig.RuntimeDirectory, out int? holder)
            ?? throw new HostException($"run host: runtime directory {hostConfig.RuntimeDirectory} is held by pluginhost " +
                                       $"{(holder is null ? "(pid not written yet)" : $"pid {holder}")} (stop it first, or give this host another runtimeDirectory)");
        Features.RequireTcx(); // before anything is loaded: a clear message instead of an attach error
        HostChecks.RequireListen(hostConfig); // the metrics port is bound after the apply: it must be free now
        var engine = new HostEngine(hostConfig, loggers);
        // A previous host that died inside a plugin call left its record: that build is quarantined, not called again.
        engine.QuarantineLeftovers();
        // A plugin's own thread that throws ends the process (.NET cannot stop that): leave the same record first.
        AppDomain.CurrentDomain.UnhandledException += (_, e) =>
        {
            if (engine.RecordCrash(e.ExceptionObject as Exception) is { } plugin)
                _log.LogCritical("plugin {Plugin} threw on a thread of its own: the host dies; the next host quarantines this build", plugin);
        };
        try
        {
            engine.Apply();
        }
        catch (HostException e) when (PluginHost.Datapath.PipelineState.LoadAll(hostConfig.RuntimeDirectory).Count > 0)
        {
            // A datapath is deployed and keeps forwarding: stay up to manage it (status, API, the next good config)
            // rather than exit, be restarted and fail again.
            _log.LogError("first apply failed; the deployed datapath keeps forwarding and the host stays up: {Error}", e.Message);
        }

        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(stop);
        // Stop means stop: if the writer is busy (a plugin call, a compile) past the stop timeout, the process ends
        // anyway; the datapath is pinned and keeps forwarding.
        void Stop()
        {
            stopping.Cancel();
            _ = Task.Delay(StopTimeout).ContinueWith(_ =>
            {
                _log.LogError("stopping took longer than {Seconds} s: exiting now (the datapath stays pinned)", StopTimeout.TotalSeconds);
                Environment.Exit(1);
            }, TaskScheduler.Default);
        }
        var reconciler = new Reconciler(configPath, engine, loggers.CreateLogger<Reconciler>());
        // Registered for the whole run, detaching included: a second Ctrl-C must not kill the host half-way.
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; Stop(); });
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; Stop(); });
        using var onHup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; reconciler.Post(new Trigger(Reconciler.ReloadSource, "SIGHUP")); });

        var started = new Stack<(string What, Func<ValueTask> Stop)>();
        try
        {
            StartWatcher(engine, reconciler, hostConfig.PluginsDirectory, started);
            // Interfaces that routes use come and go: their routes are withdrawn, and rewritten when they are back.
            var interfaces = new InterfaceWatcher(engine.Interfaces, reconciler.Post, loggers.CreateLogger<InterfaceWatcher>());
            started.Push(("interface watcher", () => { interfaces.Dispose(); return ValueTask.CompletedTask; }));
            // Health probes the plugins declare: a target going down or coming back applies again, like an interface change.
            var prober = new PluginHost.Health.Prober(engine.Probes, reconciler.Post, loggers.CreateLogger<PluginHost.Health.Prober>());
            started.Push(("prober", () => { prober.Dispose(); return ValueTask.CompletedTask; }));
            var unloadCheck = new Timer(_ => engine.CheckUnloaded(UnloadPatience), null, UnloadCheckInterval, UnloadCheckInterval);
            started.Push(("unload check", () => unloadCheck.DisposeAsync()));
            var api = await ControlServer.StartAsync(hostConfig, reconciler, engine, loggers);
            started.Push(("control API", api.DisposeAsync));
            if (hostConfig.MetricsListen is not null)
            {
                var metrics = MetricsExporter.Start(hostConfig, engine);
                started.Push(("metrics", () => { metrics.Dispose(); return ValueTask.CompletedTask; }));
            }
            // Written last: its presence means the host is fully up (API, metrics, watchers).
            var pidFile = PidFile.Create(hostConfig.RuntimeDirectory);
            started.Push(("pid file", () => { pidFile.Dispose(); return ValueTask.CompletedTask; }));
            new SystemdNotifier().Notify(new ServiceState("READY=1\nSTATUS=forwarding; API ready")); // Type=notify; a no-op outside systemd
            _log.LogInformation("running (pid {Pid}); API on {Socket}{Metrics}; watching {Config} and {Plugins}; Ctrl-C stops the host{Detail}",
                Environment.ProcessId, hostConfig.ControlSocket, hostConfig.MetricsListen is null ? "" : $", metrics on http://{hostConfig.MetricsListen}/metrics",
                configPath, hostConfig.PluginsDirectory, detachOnExit ? " and detaches the datapath" : " (the datapath stays)");

            await reconciler.RunAsync(stopping.Token);
        }
        finally
        {
            await StopAllAsync(started);
        }
        // Nothing can re-apply any more: the reconciler, the API and the watcher have stopped.
        if (detachOnExit)
            engine.Uninstall();
        _log.LogInformation("stopped");
        return 0;
    }

    // The watcher follows the plugins directory: a configuration naming another one replaces it (the apply under
    // way already reads the new directory). Stopping it unsubscribes first, so no new watcher appears afterwards.
    private static void StartWatcher(HostEngine engine, Reconciler reconciler, string pluginsDirectory, Stack<(string, Func<ValueTask>)> started)
    {
        // Only the folders the configuration names now: the others are never loaded.
        Func<IReadOnlyCollection<string>> named = () => PluginHost.Plugins.PluginCatalog.NamesIn(engine.Config).ToList();
        var watcher = new ChangeWatcher(reconciler.ConfigPath, pluginsDirectory, reconciler.Post, named);
        Action<string> follow = directory =>
        {
            var old = Interlocked.Exchange(ref watcher, new ChangeWatcher(reconciler.ConfigPath, directory, reconciler.Post, named));
            old.Dispose();
        };
        engine.PluginsDirectoryChanged += follow;
        started.Push(("change watcher", () =>
        {
            engine.PluginsDirectoryChanged -= follow;
            Volatile.Read(ref watcher).Dispose();
            return ValueTask.CompletedTask;
        }));
    }

    // Reverse order of starting. A failure to stop one part is logged and the rest still stop; on a failed start
    // the exception that caused it is the one the caller sees.
    private async Task StopAllAsync(Stack<(string What, Func<ValueTask> Stop)> started)
    {
        while (started.TryPop(out var part))
        {
            try
            {
                await part.Stop();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _log.LogWarning("stop {Part}: {Error}", part.What, e.Message);
            }
        }
    }
}
