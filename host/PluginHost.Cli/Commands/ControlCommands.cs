using PluginHost.Compose;
using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Observe;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Control;
using PluginHost.Hosting;
using PluginHost.Runtime;

namespace PluginHost.Cli.Commands;

/// <summary><c>plugins list</c>, <c>pipeline show</c> and the plugins' own runtime commands (<c>route add</c>, ...).</summary>
internal static class ControlCommands
{
    public static Command Plugins()
    {
        var config = CommonOptions.Config(required: false);
        var runtime = CommonOptions.RuntimeDirectory();
        var json = CommonOptions.Json();
        var list = new Command("list", "List the plugins in the plugins directory (loaded, failed or unused) and their runtime commands") { config, runtime, json };
        list.SetAction(parse => CommonOptions.Guard(() =>
        {
            var listing = Listing(parse.GetValue(config), parse.GetValue(runtime));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(listing, HostJson.Options));
                return 0;
            }
            foreach (var p in listing.Plugins)
            {
                Console.WriteLine($"{p.Name,-16} {p.Version,-10} {(p.State == "loaded" ? p.Description : $"({p.State}: not loaded)")}");
                Console.WriteLine($"{"",-16} {p.Assembly}");
                foreach (var c in p.Commands)
                    Console.WriteLine($"{"",-16} pluginhost {c.Noun} {c.Verb} {string.Join(' ', c.Arguments.Select(a => a.Required ? $"--{a.Name} X" : $"[--{a.Name} X]"))}");
            }
            foreach (var e in listing.Errors)
                Console.WriteLine($"problem: {e}");
            return 0;
        }));
        return new Command("plugins", "Plugins") { list };
    }

    public static Command Pipeline()
    {
        var name = new Argument<string>("name") { Description = "Pipeline name" };
        var config = CommonOptions.Config(required: false);
        var runtime = CommonOptions.RuntimeDirectory();
        var json = CommonOptions.Json();
        var show = new Command("show", "Show one pipeline: hook, generation, stages, pinned maps, counters") { name, config, runtime, json };
        show.SetAction(parse => CommonOptions.Guard(() =>
        {
            string dir = CommonOptions.ResolveRuntimeDirectory(parse.GetValue(config), parse.GetValue(runtime));
            string pipeline = parse.GetValue(name)!;
            var state = Datapath.PipelineState.Load(dir, pipeline) ?? throw new ControlException($"show pipeline {pipeline}: not deployed (see pluginhost status)");
            var stats = CounterReader.ReadPinned(state);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { state, stats }, HostJson.Options));
                return 0;
            }
            Console.WriteLine($"pipeline {state.Name}: {state.Interface} {state.Direction}{(state.Namespace is null ? "" : $" in netns {state.Namespace}")}, generation {state.Generation} (deployed {state.DeployedAt:u})");
            Console.WriteLine($"  pins: {state.PinDirectory}");
            foreach (var s in state.Stages)
            {
                var c = stats.Stages[s.Index];
                Console.WriteLine($"  stage {s.Index} {s.Plugin} ({s.Program}): packets {c[StageCounter.Packets]}, matched {c[StageCounter.Matched]}, " +
                                  $"redirected {c[StageCounter.Redirected]}, passed {c[StageCounter.Passed]}, dropped {c[StageCounter.Dropped]}");
                foreach (var m in state.Maps.Where(m => m.Stage == s.Index))
                    Console.WriteLine($"    map {m.CName}: {m.Schema.Kind}, {m.Schema.Contents}, max {m.Schema.MaxEntries}, pinned {m.Pin}");
            }
            return 0;
        }));
        return new Command("pipeline", "Pipelines") { show };
    }

    /// <summary>
    /// The plugins' runtime commands, discovered from the running host (or, with --config and no host,
    /// from the plugins directory), so a third-party plugin gets CLI verbs without host changes.
    /// </summary>
    public static IEnumerable<Command> Runtime(string[] args, bool quiet = false)
    {
        PluginListing listing;
        try
        {
            listing = Listing(ConfigFrom(args), RuntimeFrom(args));
        }
        catch (Exception e) when (e is HostException or IOException or UnauthorizedAccessException)
        {
            // No host and no usable --config: only the built-in commands, and a word on why (help says it its own way).
            if (!quiet)
                Console.Error.WriteLine($"pluginhost: plugin commands unavailable: {e.Message}");
            yield break;
        }
        foreach (var noun in listing.Plugins.SelectMany(p => p.Commands).GroupBy(c => c.Noun))
        {
            var nounCommand = new Command(noun.Key, $"Runtime commands of {string.Join(", ", listing.Plugins.Where(p => p.Commands.Any(c => c.Noun == noun.Key)).Select(p => p.Name))}");
            foreach (var command in noun.GroupBy(c => c.Verb).Select(g => g.First()))
                nounCommand.Subcommands.Add(Verb(command));
            yield return nounCommand;
        }
    }

    private static Command Verb(RuntimeCommand command)
    {
        var config = CommonOptions.Config(required: false);
        var runtime = CommonOptions.RuntimeDirectory();
        var json = CommonOptions.Json();
        var pipeline = new Option<string?>("--pipeline") { Description = "Pipeline, when several have a stage offering this command" };
        var stage = new Option<int?>("--stage") { Description = "Stage index, when the pipeline has several" };
        var verb = new Command(command.Verb, command.Description) { config, runtime, json, pipeline, stage };
        var stats = new Option<bool>("--stats") { Description = "Show each item's counters (packets, bytes) where its plugin keeps them" };
        if (command.Action == RuntimeAction.List)
            verb.Options.Add(stats);
        var arguments = command.Arguments.Select(a => (a.Name, Option: new Option<string?>("--" + a.Name) { Description = a.Description, Required = a.Required })).ToList();
        foreach (var (_, option) in arguments)
            verb.Options.Add(option);
        verb.SetAction(parse => CommonOptions.Guard(() =>
        {
            var values = arguments.Where(a => parse.GetValue(a.Option) is not null).ToDictionary(a => a.Name, a => parse.GetValue(a.Option)!);
            foreach (var path in command.Arguments.Where(a => a.IsPath && values.ContainsKey(a.Name)))
                values[path.Name] = Path.GetFullPath(values[path.Name]); // the host runs elsewhere: send the operator's path resolved
            var request = new CommandRequest(command.Noun, command.Verb, values, parse.GetValue(pipeline), parse.GetValue(stage))
            {
                Stats = command.Action == RuntimeAction.List && parse.GetValue(stats),
            };
            var result = Execute(request, parse.GetValue(config), parse.GetValue(runtime));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result, HostJson.Options));
                return 0;
            }
            if (command.Action == RuntimeAction.List)
                Print(result.Items);
            else
                Console.WriteLine($"pipeline {result.Pipeline} stage {result.Stage}: {result.Message} in {result.Milliseconds:F1} ms");
            return 0;
        }));
        return verb;
    }

    // Through the running host when there is one (it is the single writer); else applied here directly.
    private static CommandResult Execute(CommandRequest request, FileInfo? config, DirectoryInfo? runtime)
    {
        string dir = CommonOptions.ResolveRuntimeDirectory(config, runtime);
        using var client = ControlClient.TryCreate(dir);
        if (client is not null)
        {
            var call = Task.Run(() => client.Post("/v1/commands", request));
            if (!Console.IsErrorRedirected)
                ShowProgress(call, () => client.Get("/v1/progress").Deserialize<ApplyProgress.Snapshot>(HostJson.Options)!);
            return call.GetAwaiter().GetResult().Deserialize<CommandResult>(HostJson.Options)!;
        }
        if (config is null)
            throw new ControlException($"run '{request.Noun} {request.Verb}': no running host (no control socket under {dir}); give --config to apply without one");
        var engine = new HostEngine(ConfigLoader.Load(config.FullName), NullLoggerFactory.Instance);
        var local = Task.Run(() => engine.RunCommand(request));
        if (!Console.IsErrorRedirected)
            ShowProgress(local, () => engine.Progress.Current);
        return local.GetAwaiter().GetResult();
    }

    // On an interactive terminal: a progress bar on stderr while map entries are written (large tables).
    private static void ShowProgress(Task work, Func<ApplyProgress.Snapshot> read)
    {
        bool drawn = false;
        while (!work.Wait(200))
        {
            ApplyProgress.Snapshot now;
            try
            {
                now = read();
            }
            catch (ControlException)
            {
                continue;
            }
            const int Width = 30;
            string bar = now.Total > 0
                ? $"[{new string('#', (int)(Width * now.Done / now.Total)).PadRight(Width, '.')}] {100 * now.Done / now.Total,3}% {now.Done:N0}/{now.Total:N0} {now.Phase}"
                : now.Phase + "...";
            Console.Error.Write($"\r{bar,-90}");
            drawn = true;
        }
        if (drawn)
            Console.Error.Write($"\r{new string(' ', 90)}\r");
    }

    private static PluginListing Listing(FileInfo? config, DirectoryInfo? runtime)
    {
        string dir = CommonOptions.ResolveRuntimeDirectory(config, runtime);
        using var client = ControlClient.TryCreate(dir);
        if (client is not null)
            return client.Get("/v1/plugins").Deserialize<PluginListing>(HostJson.Options)!;
        if (config is null)
            throw new ControlException($"list plugins: no running host (no control socket under {dir}); give --config to read the plugins directory");
        return new HostEngine(ConfigLoader.Load(config.FullName), NullLoggerFactory.Instance).ListPlugins();
    }

    private static void Print(IReadOnlyList<IReadOnlyDictionary<string, string>> items)
    {
        if (items.Count == 0)
        {
            Console.WriteLine("(none)");
            return;
        }
        var columns = items.SelectMany(i => i.Keys).Distinct().ToList();
        var widths = columns.ToDictionary(c => c, c => Math.Max(c.Length, items.Max(i => i.GetValueOrDefault(c, "-").Length)));
        Console.WriteLine(string.Join("  ", columns.Select(c => c.ToUpperInvariant().PadRight(widths[c]))));
        foreach (var item in items)
            Console.WriteLine(string.Join("  ", columns.Select(c => item.GetValueOrDefault(c, "-").PadRight(widths[c]))));
    }

    private static FileInfo? ConfigFrom(string[] args) => ValueOf(args, "--config", "-c") is { } path ? new FileInfo(path) : null;

    private static DirectoryInfo? RuntimeFrom(string[] args) => ValueOf(args, "--runtime-dir") is { } path ? new DirectoryInfo(path) : null;

    private static string? ValueOf(string[] args, params string[] names)
    {
        for (int i = 0; i < args.Length; i++)
        {
            foreach (var name in names)
            {
                if (args[i] == name && i + 1 < args.Length)
                    return args[i + 1];
                if (args[i].StartsWith(name + "=", StringComparison.Ordinal))
                    return args[i][(name.Length + 1)..];
            }
        }
        return null;
    }
}
