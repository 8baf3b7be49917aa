using System.Text.Json;
using System.CommandLine;
using PluginHost.Cli.Daemon;
using PluginHost.Config;
using PluginHost.Control;
using PluginHost.Hosting;
using PluginHost.Kernel;
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
            var host = new RunningHost(parse.GetValue(config)!.FullName, parse.GetValue(detach), loggers);
            return host.RunAsync(CancellationToken.None).GetAwaiter().GetResult();
        }));
        return command;
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
        var compile = new Option<bool>("--compile")
        {
            Description = "Also compile each pipeline, load it through the verifier and run its canaries (BPF_PROG_TEST_RUN); attaches and pins nothing",
        };
        var command = new Command("validate", "Check the configuration, the plugins and the interfaces; apply nothing") { config, json, compile };
        command.SetAction(parse =>
        {
            using var loggers = CommonOptions.Loggers("console");
            if (parse.GetValue(json))
                return CommonOptions.Guard(() =>
            {
                // Machines get the problems as data, with the same exit codes; other failures read like the text path's.
                RequireKernel();
                try
                {
                    var loaded = ConfigLoader.Load(parse.GetValue(config)!.FullName);
                    var ok = Validate(loaded, loggers);
                    var checks = parse.GetValue(compile) ? Datapath.OfflineCheck.Run(ok, new Compile.ClangCompiler(loaded.CacheDirectory)) : null;
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        valid = true,
                        compiled = checks,
                        pipelines = ok.Select(p => new
                        {
                            name = p.Config.Name, stages = p.Plan.Stages.Select(s => s.PluginName), entries = p.EntryCount,
                            summaries = p.Plan.Stages.Select(s => s.Summary),
                        }),
                        warnings = ok.SelectMany(p => p.Warnings),
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
                RequireKernel();
                var loaded = ConfigLoader.Load(parse.GetValue(config)!.FullName);
                var planned = Validate(loaded, loggers);
                foreach (var p in planned)
                {
                    Console.WriteLine($"ok: pipeline {p.Config.Name} on {p.Config.Interface} {p.Config.Direction.ToString().ToLowerInvariant()}" +
                        $": {string.Join(" → ", p.Plan.Stages.Select(s => s.PluginName))} ({p.EntryCount} map entries)");
                    for (int i = 0; i < p.Plan.Stages.Count; i++)
                        if (p.Plan.Stages[i].Summary is { } summary)
                            Console.WriteLine($"  stage {i} {p.Plan.Stages[i].PluginName}: {summary}");
                    // Valid, but an interface its routes use is missing or down: they would be withdrawn.
                    foreach (var warning in p.Warnings)
                        Console.WriteLine($"  warning: {warning}");
                }
                if (parse.GetValue(compile))
                    foreach (var check in Datapath.OfflineCheck.Run(planned, new Compile.ClangCompiler(loaded.CacheDirectory)))
                    {
                        CheckCommand.Print(check);
                        Console.WriteLine($"ok: pipeline {check.Pipeline}: compiled, verified, {check.Canaries.Count} canaries passed; nothing attached, nothing pinned");
                    }
                return 0;
            });
        });
        return command;
    }

    // Everything `run` would refuse before applying: the plugins' verdicts and the machine's (HostChecks), reported together.
    private static IReadOnlyList<Pipelines.PlannedPipeline> Validate(HostConfig config, Microsoft.Extensions.Logging.ILoggerFactory loggers)
    {
        var host = HostChecks.Find(config);
        IReadOnlyList<Pipelines.PlannedPipeline> planned;
        try
        {
            planned = new HostEngine(config, loggers).Validate();
        }
        catch (ConfigException e) when (host.Count > 0)
        {
            throw new ConfigException([.. e.Errors, .. host]);
        }
        return host.Count == 0 ? planned : throw new ConfigException(host);
    }

    // A kernel without tcx fails validation; without privileges the probe cannot tell, and `run` probes again.
    private static void RequireKernel() => Features.RequireTcx(allowUnknown: true);
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
            var removed = new HostEngine(hostConfig, loggers).Uninstall(named is { Length: > 0 } ? named : null);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new { removed }, HostJson.Options));
            else
                Console.WriteLine(removed.Count == 0 ? "nothing to remove" : $"removed: {string.Join(", ", removed)}");
            return 0;
        }));
        return command;
    }
}
