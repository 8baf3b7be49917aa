using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Plugins;

namespace PluginHost.Runtime;

/// <summary>A runtime command as the CLI or the API sends it.</summary>
/// <param name="Pipeline">Which pipeline, when several have a stage offering the command.</param>
/// <param name="Stage">Which stage (index), when a pipeline has several.</param>
public sealed record CommandRequest(string Noun, string Verb, IReadOnlyDictionary<string, string> Arguments, string? Pipeline = null, int? Stage = null)
{
    /// <summary>For a list: add each item's counters (packets, bytes) where the plugin keeps them (<see cref="Contract.ItemCounter"/>).</summary>
    public bool Stats { get; init; }
}

/// <summary>What a runtime command did.</summary>
public sealed record CommandResult(string Pipeline, int Stage, string Message, IReadOnlyList<IReadOnlyDictionary<string, string>> Items,
    ApplyKind? Applied, int EntriesChanged, double Milliseconds);

/// <summary>A runtime command was refused (unknown, ambiguous, bad arguments); nothing changed. Values it quotes are cut.</summary>
public sealed class CommandException(string message) : HostException(ConfigText.CutQuoted(message));

/// <summary>Finds the stage that offers a command and turns the command into an overlay edit.</summary>
internal static class CommandRunner
{
    public sealed record Target(PipelineConfig Pipeline, int StageIndex, string Instance, RuntimeCommand Command);

    public static Target Find(HostConfig config, PluginCatalog catalog, CommandRequest request)
    {
        Find(config, catalog, request, out var candidates);
        string what = $"'{request.Noun} {request.Verb}'";
        if (candidates.Count == 0 && request.Stage is int stage && Find(config, catalog, request with { Stage = null }, out var elsewhere))
            throw new CommandException($"run {what}: stage {stage}{(request.Pipeline is null ? "" : $" of pipeline {request.Pipeline}")} does not offer it; " +
                $"{string.Join(", ", elsewhere.Select(c => $"pipeline {c.Pipeline.Name} stage {c.StageIndex} ({c.Pipeline.Stages[c.StageIndex].Plugin})"))} does");
        if (candidates.Count == 0)
            throw new CommandException($"run {what}: no stage{(request.Pipeline is null ? "" : $" of pipeline {request.Pipeline}")} offers it ({Available(config, catalog)})");
        if (candidates.Count > 1)
            throw new CommandException($"run {what}: several stages offer it ({string.Join(", ", candidates.Select(c => $"pipeline {c.Pipeline.Name} stage {c.StageIndex}"))}); choose with --pipeline and --stage");
        return candidates[0];
    }

    // The stages that offer the command, within the pipeline and stage the request names (if any).
    private static bool Find(HostConfig config, PluginCatalog catalog, CommandRequest request, out List<Target> candidates)
    {
        candidates = [];
        foreach (var pipeline in config.Pipelines.Where(p => request.Pipeline is null || p.Name == request.Pipeline))
        {
            var instances = RuntimeOverlay.StageInstances(pipeline);
            for (int i = 0; i < pipeline.Stages.Count; i++)
            {
                if (request.Stage is { } wanted && wanted != i)
                    continue;
                if (!catalog.Plugins.TryGetValue(pipeline.Stages[i].Plugin, out var plugin))
                    continue;
                var command = plugin.Commands.FirstOrDefault(c => c.Noun == request.Noun && c.Verb == request.Verb);
                if (command is not null)
                    candidates.Add(new Target(pipeline, i, instances[i], command with { Arguments = command.Arguments.ToList() }));
            }
        }
        return candidates.Count > 0;
    }

    public static string Available(HostConfig config, PluginCatalog catalog)
    {
        var all = config.Pipelines.SelectMany(p => p.Stages).Select(s => s.Plugin).Distinct()
            .Select(name => catalog.Plugins.TryGetValue(name, out var p) ? p.Commands : [])
            .SelectMany(c => c).Select(c => $"{c.Noun} {c.Verb}").Distinct().ToList();
        return all.Count == 0 ? "no configured stage has runtime commands" : "available: " + string.Join(", ", all);
    }

    /// <summary>The item an Add command describes, after checking its arguments.</summary>
    public static Dictionary<string, string> Item(RuntimeCommand command, IReadOnlyDictionary<string, string> arguments)
    {
        string what = $"run '{command.Noun} {command.Verb}'";
        foreach (var name in arguments.Keys.Where(n => command.Arguments.All(a => a.Name != n)))
            throw new CommandException($"{what}: unknown argument --{name} (expected: {string.Join(", ", command.Arguments.Select(a => "--" + a.Name))})");
        foreach (var missing in command.Arguments.Where(a => (a.Required || a.Name == command.Key) && !arguments.ContainsKey(a.Name)))
            throw new CommandException($"{what}: --{missing.Name} is required ({missing.Description})");
        return arguments.ToDictionary(kv => kv.Key, kv => kv.Value);
    }

    /// <summary>The items of the target's collection in <paramref name="effective"/> settings, as flat dictionaries.</summary>
    public static List<IReadOnlyDictionary<string, string>> Items(HostConfig effective, Target target)
    {
        var stage = effective.Pipelines.Single(p => p.Name == target.Pipeline.Name).Stages[target.StageIndex];
        var list = stage.Settings[target.Command.Collection];
        return list.Items.Where(i => i.Kind == SettingsKind.Mapping)
            .Select(i => (IReadOnlyDictionary<string, string>)i.Keys.Where(k => i[k].Kind == SettingsKind.Scalar).ToDictionary(k => k, k => i[k].Scalar!))
            .ToList();
    }

}
