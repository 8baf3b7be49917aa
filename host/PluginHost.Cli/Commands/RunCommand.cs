using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using PluginHost.Config;
using PluginHost.Hosting;

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
            var engine = new HostEngine(ConfigLoader.Load(path), loggers);
            engine.Apply();

            using var stop = new ManualResetEventSlim();
            using var reload = new AutoResetEvent(false);
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });
            using var onHup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; reload.Set(); });
            log.LogInformation("running; Ctrl-C stops the host{Detail}", parse.GetValue(detach) ? " and detaches the datapath" : " (the datapath stays)");
            while (WaitHandle.WaitAny([stop.WaitHandle, reload]) == 1)
            {
                try
                {
                    engine = new HostEngine(ConfigLoader.Load(path), loggers);
                    engine.Apply();
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // A failed reload keeps the running generation.
                    log.LogError("reload failed, the running datapath is unchanged: {Error}", e.Message);
                }
            }
            if (parse.GetValue(detach))
                engine.Uninstall();
            log.LogInformation("stopped");
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
        var command = new Command("validate", "Check the configuration, the plugins and the interfaces; apply nothing") { config };
        command.SetAction(parse => CommonOptions.Guard(() =>
        {
            using var loggers = CommonOptions.Loggers("console");
            var engine = new HostEngine(ConfigLoader.Load(parse.GetValue(config)!.FullName), loggers);
            var planned = engine.Validate();
            foreach (var p in planned)
                Console.WriteLine($"ok: pipeline {p.Config.Name} on {p.Config.Interface} {p.Config.Direction.ToString().ToLowerInvariant()}" +
                    $": {string.Join(" → ", p.Plan.Stages.Select(s => s.PluginName))} ({p.StageEntries.Sum(e => e.Count)} map entries)");
            return 0;
        }));
        return command;
    }
}

/// <summary><c>pluginhost uninstall</c>: detach and unpin.</summary>
internal static class UninstallCommand
{
    public static Command Create()
    {
        var config = CommonOptions.Config(required: true);
        var command = new Command("uninstall", "Detach every pipeline of the configuration and remove its pins") { config };
        command.SetAction(parse => CommonOptions.Guard(() =>
        {
            using var loggers = CommonOptions.Loggers("console");
            new HostEngine(ConfigLoader.Load(parse.GetValue(config)!.FullName), loggers).Uninstall();
            return 0;
        }));
        return command;
    }
}
