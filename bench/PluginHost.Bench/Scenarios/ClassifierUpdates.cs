using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Runtime;
using HostYaml = PluginHost.TestSupport.HostYaml;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 3 of issue 12: single rule add/del latency with the ClassBench 10k set loaded. A live <see cref="HostEngine"/>
/// (private plugins directory, BPF root, runtime directory and compile cache) runs one FiveTuplePolicy stage with the
/// rules file on the sandbox's input interface (tcx, ingress); <c>rule add</c> of a named rule and <c>rule del</c> of it
/// go through <see cref="HostEngine.RunCommand"/>, as the API and the CLI run them. First spaced ~50 ms apart (an operator's
/// pace: a double-buffered change waits for a grace period only when the previous flip was less than one ago), then
/// back to back.
/// </summary>
public sealed class ClassifierUpdates(Sandbox sandbox, Repo repo, bool quick, Action<string> log)
{
    public const double SpacingMs = 50;
    public const double GoalP99Ms = 10;
    private const string Pipeline = "rules";
    private const string RuleName = "bench-rule";

    private int PairCount => quick ? 20 : 200;

    /// <summary>Pairs run before measuring, so the command path runs optimized code, as in a host that has served some.</summary>
    public const int WarmUpPairs = 100;

    private const int WarmUpBase = 60_000; // warm-up rules' sources (10.250.234.96 on), apart from the measured ones

    private readonly string _work = Path.Combine(sandbox.WorkDirectory, "classifier-updates");

    public ClassifierUpdatesResult Run(string rulesFile, int rules, CancellationToken cancel)
    {
        string plugins = Path.Combine(_work, "plugins");
        Directory.CreateDirectory(plugins);
        HostYaml.CopyPlugin(Path.Combine(repo.PluginsDirectory, "FiveTuplePolicy"), plugins);
        string file = Path.Combine(_work, Path.GetFileName(rulesFile)); // beside the configuration: the plugin reads files only there
        File.Copy(rulesFile, file, overwrite: true);
        string config = Path.Combine(_work, "host.yaml");
        File.WriteAllText(config, HostYaml.Config(plugins, Path.Combine(sandbox.BpfRoot, Pipeline), Path.Combine(_work, "run"), Path.Combine(_work, "cache"),
            HostYaml.Pipeline(Pipeline, sandbox.Namespace.Name, Sandbox.Input, $"""
                      - plugin: FiveTuplePolicy
                        settings:
                          rulesFile: {Path.GetFileName(file)}
                          defaultAction: next

                """)));

        var engine = new HostEngine(ConfigLoader.Load(config), NullLoggerFactory.Instance);
        using var uninstall = sandbox.OnTeardown("uninstall the classifier update benchmark's host", engine.Uninstall);
        log($"classifier: attaching FiveTuplePolicy with {rules:N0} rules for rule add/del");
        var watch = Stopwatch.StartNew();
        var attached = engine.Apply().Single();
        double attachMs = watch.Elapsed.TotalMilliseconds;
        if (attached.Kind != ApplyKind.Attached)
            throw new BenchException($"attach FiveTuplePolicy with {rules} rules: the host did {attached.Kind}");

        // A running host has served commands before: the first ones JIT-compile the command path, and the runtime
        // compiles it again, optimized, once it is hot (tiered compilation, in the background). Not measured.
        var warm = Stopwatch.StartNew();
        for (int i = 0; i < WarmUpPairs; i++)
            Pair(engine, WarmUpBase + i, spaced: false);
        Thread.Sleep(TimeSpan.FromSeconds(1)); // the optimized code is compiled in the background once calls pause for 100 ms
        log($"classifier: {WarmUpPairs} rule add/del pairs to warm up ({warm.Elapsed.TotalSeconds:F1} s, not measured)");
        log($"classifier: {PairCount} rule add/del pairs, {SpacingMs:0} ms apart");
        var spaced = Pairs(engine, 1, spaced: true, cancel);
        log($"classifier: {PairCount} rule add/del pairs back to back");
        var burst = Pairs(engine, 1 + PairCount, spaced: false, cancel);

        string Label(string verb, bool isSpaced) => $"rule {verb}, " + (isSpaced ? $"spaced {SpacingMs:0} ms apart (an operator's pace)" : "back to back (a burst)");
        return new ClassifierUpdatesResult(rules, SpacingMs,
            $"rule add name={RuleName} protocol=udp from=10.250.X.Y/32 dport=9000 action=drop, then rule del name={RuleName}", attachMs,
            [
                CommandTiming.Row("add-spaced", Label("add", true), spaced.Add, GoalP99Ms),
                CommandTiming.Row("del-spaced", Label("del", true), spaced.Del, GoalP99Ms),
                CommandTiming.Row("add-burst", Label("add", false), burst.Add, null),
                CommandTiming.Row("del-burst", Label("del", false), burst.Del, null),
            ]);
    }

    private (List<CommandTiming.Timed> Add, List<CommandTiming.Timed> Del) Pairs(HostEngine engine, int first, bool spaced, CancellationToken cancel)
    {
        List<CommandTiming.Timed> add = [], del = [];
        for (int i = first; i < first + PairCount; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var (a, d) = Pair(engine, i, spaced);
            add.Add(a);
            del.Add(d);
        }
        return (add, del);
    }

    // One named rule, added then removed.
    private static (CommandTiming.Timed Add, CommandTiming.Timed Del) Pair(HostEngine engine, int i, bool spaced)
    {
        var add = CommandTiming.Run(engine, new CommandRequest("rule", "add", new Dictionary<string, string>
        {
            ["name"] = RuleName,
            ["protocol"] = "udp",
            ["from"] = $"10.250.{(i >> 8) & 255}.{i & 255}/32",
            ["dport"] = "9000",
            ["action"] = "drop",
        }, Pipeline));
        if (spaced)
            Thread.Sleep(TimeSpan.FromMilliseconds(SpacingMs));
        var del = CommandTiming.Run(engine, new CommandRequest("rule", "del", new Dictionary<string, string> { ["name"] = RuleName }, Pipeline));
        if (spaced)
            Thread.Sleep(TimeSpan.FromMilliseconds(SpacingMs));
        return (add, del);
    }
}
