using System.CommandLine;
using System.Text.Json;
using PluginHost.Compile;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Observe;
using PluginHost.Plugins;

namespace PluginHost.Cli.Commands;

/// <summary><c>pluginhost plugin check DIR --settings FILE</c>: load, validate, render, compile, verify and run the canaries
/// of one plugin, attaching and pinning nothing.</summary>
internal static class CheckCommand
{
    public static Command Plugin()
    {
        var dir = new Argument<DirectoryInfo>("dir")
        {
            Description = "The plugin's folder, as dropped into the plugins directory: named after the plugin and holding NAME.dll",
        };
        var settings = new Option<FileInfo?>("--settings", "-s") { Description = "YAML file with the stage's settings (what goes under settings: in a configuration)" };
        var hook = new Option<string>("--interface") { Description = "Interface the pipeline is checked for (its settings resolve interfaces here)", DefaultValueFactory = _ => "lo" };
        var direction = new Option<Direction>("--direction") { Description = "ingress or egress", DefaultValueFactory = _ => Direction.Ingress };
        var cache = new Option<DirectoryInfo?>("--cache-dir") { Description = $"Compile cache (default {HostConfig.DefaultCacheDirectory})" };
        var json = CommonOptions.Json();
        var check = new Command("check", "Check a plugin offline: load it, validate its settings, compile, load through the verifier and " +
            "run its canaries under BPF_PROG_TEST_RUN; attaches and pins nothing") { dir, settings, hook, direction, cache, json };
        check.SetAction(parse => CommonOptions.Guard(() =>
        {
            var compiler = new ClangCompiler(parse.GetValue(cache)?.FullName ?? HostConfig.DefaultCacheDirectory);
            var result = PluginCheck.Run(parse.GetValue(dir)!.FullName, parse.GetValue(settings)?.FullName, parse.GetValue(hook)!, parse.GetValue(direction), compiler);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, HostJson.Options));
                return 0;
            }
            Console.WriteLine($"plugin {result.Plugin} {result.Version} (sha256 {result.Sha256[..12]}): loaded, settings valid");
            foreach (var warning in result.Warnings)
                Console.WriteLine($"  warning: {warning}");
            Print(result.Check);
            Console.WriteLine($"ok: plugin {result.Plugin}: compiled, verified, {result.Check.Canaries.Count} canaries passed; nothing attached, nothing pinned");
            return 0;
        }));
        return new Command("plugin", "One plugin, offline") { check };
    }

    /// <summary>What ran for a pipeline: compile, the verified programs, each canary with its verdict.</summary>
    public static void Print(PipelineCheck check)
    {
        Console.WriteLine($"  compiled pipeline {check.Pipeline} ({string.Join(" → ", check.Stages)}) in {check.Compile.TotalMilliseconds:F0} ms" +
            (check.CompileCached ? " (from the compile cache)" : ""));
        Console.WriteLine($"  verified and loaded in {check.Load.TotalMilliseconds:F0} ms:");
        foreach (var p in check.Programs)
            Console.WriteLine($"    program {p.Program}: {p.Instructions} instructions, {p.JitedBytes} bytes JIT-compiled");
        Console.WriteLine($"  {check.Canaries.Count} canaries run under BPF_PROG_TEST_RUN in {check.Canary.TotalMilliseconds:F1} ms:");
        foreach (var canary in check.Canaries)
            Console.WriteLine($"    {canary}");
        foreach (var shadowed in check.Shadowed)
            Console.WriteLine($"  warning: {shadowed}");
    }
}
