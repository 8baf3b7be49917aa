using System.Text.Json;
using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using PluginHost.Config;
using PluginHost.Control;
using PluginHost.Hosting;
using PluginHost.Interop;
using PluginHost.Observe;
using PluginHost.Runtime;

namespace PluginHost.Cli.Commands;

/// <summary><c>pluginhost run</c>: apply the configuration and stay in the foreground.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var config = CommonOptions.Config(required: true);
        var detach = new Option<bool>("--detach-on-exit")
        {
            Description = "Detach and unpin the pipelines when the host stops (by default the datapath keeps forwarding)",
        };
        var logFormat = CommonOptions.LogFormat();
        var command = new Command("run", "Apply the configuration and run in the foreground; SIGHUP re-applies it, Ctrl-C/SIGTERM stops the host")
        {
            config, detach, logFormat,
        };
        command.SetAction(parse => CommonOptions.Guard(() =>
        {
            using var loggers = CommonOptions.Loggers(parse.GetValue(logFormat)!);
            var log = loggers.CreateLogger("pluginhost");
            string path = parse.GetValue(config)!.FullName;
            var hostConfig = ConfigLoader.Load(path);
            var engine = new HostEngine(hostConfig, loggers);
            // A failed first apply stops the host (the pinned datapath, if any, is left as it was).
            engine.Apply();

            using var stop = new CancellationTokenSource();
            var reconciler = new Reconciler(path, engine, loggers.CreateLogger<Reconciler>());
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using var onHup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; reconciler.Post(new Trigger(Reconciler.ReloadSource, "SIGHUP")); });
            var watcher = new ChangeWatcher(path, hostConfig.PluginsDirectory, reconciler.Post);
            engine.PluginsDirectoryChanged += directory =>
            {
                var old = Interlocked.Exchange(ref watcher, new ChangeWatcher(path, directory, reconciler.Post));
                old.Dispose(); // the apply under way already reads the new directory
            };
            using var unloadCheck = new Timer(_ => engine.CheckUnloaded(TimeSpan.FromSeconds(30)), null, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10));
            var api = ControlServer.StartAsync(hostConfig, reconciler, engine, loggers).GetAwaiter().GetResult();
            using var metrics = hostConfig.MetricsListen is null ? null : MetricsExporter.Start(hostConfig, engine);
            // Written last: its presence means the host is fully up (API, metrics, watchers).
            using var pidFile = PidFile.Create(hostConfig.RuntimeDirectory);
            new Microsoft.Extensions.Hosting.Systemd.SystemdNotifier().Notify(
                new Microsoft.Extensions.Hosting.Systemd.ServiceState("READY=1\nSTATUS=forwarding; API ready")); // Type=notify; a no-op outside systemd
            log.LogInformation("running (pid {Pid}); API on {Socket}{Metrics}; watching {Config} and {Plugins}; Ctrl-C stops the host{Detail}",
                Environment.ProcessId, hostConfig.ControlSocket, hostConfig.MetricsListen is null ? "" : $", metrics on http://{hostConfig.MetricsListen}/metrics",
                path, hostConfig.PluginsDirectory, parse.GetValue(detach) ? " and detaches the datapath" : " (the datapath stays)");
            reconciler.RunAsync(stop.Token).GetAwaiter().GetResult();
            api.DisposeAsync().AsTask().GetAwaiter().GetResult();
            watcher.Dispose();
            if (parse.GetValue(detach))
                engine.Uninstall();
            log.LogInformation("stopped");
            return 0;
        }));
        return command;
    }
}

/// <summary>The running host's pid, so that <c>pluginhost reload</c> can find it.</summary>
internal sealed class PidFile : IDisposable
{
    private readonly string _path;

    private PidFile(string path) => _path = path;

    public static string PathIn(string runtimeDirectory) => System.IO.Path.Combine(runtimeDirectory, "pluginhost.pid");

    public static PidFile Create(string runtimeDirectory)
    {
        Directory.CreateDirectory(runtimeDirectory);
        string path = PathIn(runtimeDirectory);
        File.WriteAllText(path, Environment.ProcessId.ToString());
        return new PidFile(path);
    }

    public void Dispose()
    {
        if (File.Exists(_path) && File.ReadAllText(_path).Trim() == Environment.ProcessId.ToString())
            File.Delete(_path);
    }
}

/// <summary><c>pluginhost reload</c>: ask the running host to re-read its configuration and plugins, and wait for the outcome.</summary>
internal static class ReloadCommand
{
    public static Command Create()
    {
        var config = CommonOptions.Config(required: false);
        var runtime = CommonOptions.RuntimeDirectory();
        var command = new Command("reload", "Make the running host re-read its configuration and plugins now; prints the outcome") { config, runtime };
        var json = CommonOptions.Json();
        command.Options.Add(json);
        command.SetAction(parse => CommonOptions.Guard(() =>
        {
            string dir = CommonOptions.ResolveRuntimeDirectory(parse.GetValue(config), parse.GetValue(runtime));
            using var client = ControlClient.TryCreate(dir)
                ?? throw new ControlException($"reload host: no running host (no control socket under {dir}; start one with pluginhost run)");
            var result = client.Post("/v1/reload");
            if (parse.GetValue(json))
                Console.WriteLine(result);
            else
                foreach (var r in result.GetProperty("results").EnumerateArray())
                {
                    string pipeline = r.GetProperty("pipeline").GetString()!;
                    Console.WriteLine($"{pipeline}: {r.GetProperty("kind").GetString()!.ToLowerInvariant()}, generation {r.GetProperty("generation")}, " +
                                      $"{r.GetProperty("entriesChanged")} map entries changed ({result.GetProperty("milliseconds").GetDouble():F1} ms)");
                    if (r.TryGetProperty("shadowed", out var shadowed))
                        foreach (var warning in shadowed.EnumerateArray())
                            Console.WriteLine($"{pipeline}: warning: {warning.GetString()}");
                }
            return 0;
        }));
        return command;
    }
}

/// <summary><c>pluginhost validate</c>: check everything, apply nothing.</summary>
internal static class ValidateCommand
{
    public static Command Create()
    {
        var config = CommonOptions.Config(required: true);
        var json = CommonOptions.Json();
        var command = new Command("validate", "Check the configuration, the plugins and the interfaces; apply nothing") { config, json };
        command.SetAction(parse =>
        {
            using var loggers = CommonOptions.Loggers("console");
            if (parse.GetValue(json))
                return CommonOptions.Guard(() =>
            {
                // Machines get the problems as data, with the same exit codes; other failures read like the text path's.
                try
                {
                    var ok = new HostEngine(ConfigLoader.Load(parse.GetValue(config)!.FullName), loggers).Validate();
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        valid = true,
                        pipelines = ok.Select(p => new { name = p.Config.Name, stages = p.Plan.Stages.Select(s => s.PluginName), entries = p.EntryCount }),
                    }, HostJson.Options));
                    return 0;
                }
                catch (ConfigException e)
                {
                    Console.WriteLine(JsonSerializer.Serialize(new { valid = false, errors = e.Errors }, HostJson.Options));
                    return 1;
                }
            });
            return CommonOptions.Guard(() =>
            {
                var engine = new HostEngine(ConfigLoader.Load(parse.GetValue(config)!.FullName), loggers);
                foreach (var p in engine.Validate())
                    Console.WriteLine($"ok: pipeline {p.Config.Name} on {p.Config.Interface} {p.Config.Direction.ToString().ToLowerInvariant()}" +
                        $": {string.Join(" → ", p.Plan.Stages.Select(s => s.PluginName))} ({p.EntryCount} map entries)");
                return 0;
            });
        });
        return command;
    }
}

/// <summary><c>pluginhost uninstall</c>: detach and unpin.</summary>
internal static class UninstallCommand
{
    public static Command Create()
    {
        var config = CommonOptions.Config(required: true);
        var json = CommonOptions.Json();
        var pipeline = new Option<string[]>("--pipeline")
        {
            Description = "Only these pipelines (repeatable), also ones no longer in the configuration; default: every configured one",
            AllowMultipleArgumentsPerToken = false,
        };
        var command = new Command("uninstall", "Detach pipelines and remove their pins: every one of the configuration, or those named") { config, pipeline, json };
        command.SetAction(parse => CommonOptions.Guard(() =>
        {
            using var loggers = CommonOptions.Loggers("console");
            var hostConfig = ConfigLoader.Load(parse.GetValue(config)!.FullName);
            var named = parse.GetValue(pipeline);
            IReadOnlyList<string> removed;
            try
            {
                removed = new HostEngine(hostConfig, loggers).Uninstall(named is { Length: > 0 } ? named : null);
            }
            catch (InvalidOperationException e) when (named is { Length: > 0 })
            {
                // HostEngine refuses an unknown pipeline name with InvalidOperationException; say it as a host error.
                throw new CommandException(e.Message);
            }
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new { removed }, HostJson.Options));
            else
                Console.WriteLine(removed.Count == 0 ? "nothing to remove" : $"removed: {string.Join(", ", removed)}");
            return 0;
        }));
        return command;
    }
}
