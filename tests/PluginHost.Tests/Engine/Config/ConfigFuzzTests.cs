using System.Diagnostics;
using System.Text;
using CsCheck;
using PluginHost.Config;
using PluginHost.Pipelines;
using PluginHost.Plugins;
using PluginHost.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Engine.Config;

/// <summary>The repository's plugins, loaded once for every fuzz case.</summary>
public sealed class RepoPluginsFixture : IDisposable
{
    public PluginCatalog Catalog { get; } = PluginCatalog.Load(Repo.PluginsDirectory, ["SourcePolicy", "IPv6", "FiveTuplePolicy", "LoadBalancer"]);

    public void Dispose() => Catalog.Dispose();
}

/// <summary>
/// Issue 11: a fuzzer over what <c>validate</c> runs (ConfigLoader, then the planner with the repository's plugins,
/// in-process): YAML documents of valid shape with mutated values, random structure, deep nesting, alias bombs, huge
/// scalars and mangled text. Only a <see cref="ConfigException"/> may come out: never another exception, a crash (the
/// test process would die) or a hang (each case has <see cref="CaseLimit"/>).
/// <para>
/// In CI: a fixed seed and <see cref="CiIterations"/> cases (about 20 s on 2 cores). Longer, from a random seed:
/// <c>PLUGINHOST_FUZZ_SECONDS=600 dotnet test tests/PluginHost.Tests -c Release --filter FullyQualifiedName~ConfigFuzzTests</c>;
/// a failure prints its seed, replayed with <c>PLUGINHOST_FUZZ_SEED=SEED</c>.
/// </para>
/// </summary>
[Trait("Category", "Unit")]
public sealed class ConfigFuzzTests(RepoPluginsFixture plugins, ITestOutputHelper output) : IClassFixture<RepoPluginsFixture>
{
    public const int CiIterations = 3_000;
    public static readonly TimeSpan CaseLimit = TimeSpan.FromSeconds(10);
    private static readonly string Seed = new PCG(11, 0x5EED_0011).ToString();
    private const string ConfigPath = "/etc/pluginhost-fuzz/config.yaml";

    // Values a field may take: good ones of every plugin, near misses, YAML's own tricks, paths outside, odd text.
    private static readonly string[] Values =
    [
        "", "~", "null", "0", "-1", "1", "64", "65536", "4294967296", "99999999999999999999", "1e9", "0x10", "true", "NaN",
        "198.18.1.0/24", "198.18.1.5/24", "10.0.0.0/8", "0.0.0.0/0", "198.18.3.2", "224.0.0.5", "255.255.255.255", "010.0.0.0/8",
        "2001:db8:1::/48", "fe80::/64", "fe80::2", "::", "2001:db8::2%eth0", "[::1]",
        "lo", "eth0", "up1", "a/b", "0123456789abcdefX", "ingress", "egress", "sideways",
        "tcp", "udp", "icmp", "any", "300", "1024-65535", "65535-1", "443", "redirect", "drop", "pass", "flow", "source",
        "lan-in", "a", "-bad", "A", "pluginhost", "127.0.0.1:9464", "127.0.0.1:0", "[::1]:80",
        "routes.txt", "/etc/shadow", "../../etc/passwd", "/dev/zero", "/proc/self/environ", "/tmp", ".",
        "'quoted'", "\"double\"", "[]", "{}", "[1, 2]", "{ a: 1 }", "!!binary aGk=", "!custom x", "&anchor 1", "*anchor", "*nowhere",
        "|\n  block", ">\n  folded", "- a\n- b", "? complex\n: key", "key: value", "#comment", "%TAG ! tag:x", "---", "...",
        "é中𝄞", "\t", "\\u0000", "\"\\x00\"", "@", "`", "{", "]", ":", "- ", "&", "*",
    ];

    private static readonly string[] Keys =
    [
        "pluginsDirectory", "bpfRoot", "runtimeDirectory", "cacheDirectory", "allowedPaths", "api", "group", "metrics", "listen",
        "pipelines", "name", "interface", "direction", "stages", "plugin", "settings", "routes", "routesFile", "routesFileMaxBytes",
        "from", "to", "via", "rules", "protocol", "sport", "dport", "action", "services", "hash", "nexthops", "weight", "x", "",
    ];

    private static readonly string[] Plugins = ["SourcePolicy", "IPv6", "FiveTuplePolicy", "LoadBalancer", "Nope", ""];

    private static readonly Gen<string> Value = Gen.OneOf(
        Gen.Int[0, Values.Length - 1].Select(i => Values[i]),
        Gen.Int[0, Values.Length - 1].Select(i => System.Text.Json.JsonSerializer.Serialize(Values[i])),
        Gen.String[Gen.Char, 0, 12].Select(s => System.Text.Json.JsonSerializer.Serialize(s)),
        Gen.String[Gen.Char["abc0123456789.:/-[]{}&*!|>#'\" \n"], 0, 16]);

    // Good values, each replaced by a drawn one one time in six: most documents are nearly valid, so the plugins' own checks run.
    private static Gen<string[]> Mutated(params string[] good) => Gen.Select(Gen.Int[0, 5].Array[good.Length], Value.Array[good.Length],
        (dice, drawn) => good.Select((g, i) => dice[i] == 0 ? drawn[i] : g).ToArray());

    // A stage of one of the repository's plugins, in block style.
    private static readonly Gen<string> Stage = Gen.Int[0, Plugins.Length - 1].SelectMany(plugin => Plugins[plugin] switch
    {
        "SourcePolicy" => Mutated("198.18.1.0/24", "lo", "127.0.0.2", "10.0.0.0/8", "lo", "", "").Select(v => SourceRoutes("SourcePolicy", v)),
        "IPv6" => Mutated("2001:db8:1::/48", "lo", "fe80::2", "2001:db8:2::/48", "lo", "", "").Select(v => SourceRoutes("IPv6", v)),
        "FiveTuplePolicy" => Mutated("web", "tcp", "198.18.1.0/24", "192.0.2.0/24", "1024-65535", "443", "redirect", "lo", "127.0.0.2").Select(v => $"""
                  - plugin: FiveTuplePolicy
                    settings:
                      rules:
                        - name: {v[0]}
                          protocol: {v[1]}
                          from: {v[2]}
                          to: {v[3]}
                          sport: {v[4]}
                          dport: {v[5]}
                          action: {v[6]}
                          interface: {v[7]}
                          via: {v[8]}
            """),
        "LoadBalancer" => Mutated("198.18.9.0/24", "flow", "lo", "127.0.0.2", "2", "lo", "1").Select(v => $"""
                  - plugin: LoadBalancer
                    settings:
                      services:
                        - to: {v[0]}
                          hash: {v[1]}
                          nexthops:
                            - {"{"} interface: {v[2]}, via: {v[3]}, weight: {v[4]} {"}"}
                            - interface: {v[5]}
                              weight: {v[6]}
            """),
        _ => Value.Array[2].Select(v => $"""
                  - plugin: {Plugins[plugin]}{v[0]}
                    settings: {v[1]}
            """),
    });

    // Lines of a routes file setting are left out when empty (an empty routesFile names the configuration's directory).
    private static string SourceRoutes(string plugin, string[] v) => $"""
                  - plugin: {plugin}
                    settings:
                      routes:
                        - from: {v[0]}
                          interface: {v[1]}
                          via: {v[2]}
                        - {"{"} from: {v[3]}, interface: {v[4]} {"}"}
            {(v[5].Length == 0 ? "" : $"          routesFile: {v[5]}\n")}{(v[6].Length == 0 ? "" : $"          routesFileMaxBytes: {v[6]}\n")}
            """;

    private static readonly Gen<string> ValidShape = Gen.Select(Mutated("/sys/fs/bpf/fuzz", "/tmp", "pluginhost", "127.0.0.1:9464", "lan-in", "lo", "ingress"),
        Stage.Array[1, 3], Gen.Bool, (v, stages, withTop) => $"""
        {(withTop ? $"bpfRoot: {v[0]}\nallowedPaths: [{v[1]}]\napi: {{ group: {v[2]} }}\nmetrics: {{ listen: {v[3]} }}\n" : "")}pipelines:
          - name: {v[4]}
            interface: {v[5]}
            direction: {v[6]}
            stages:
        {string.Join('\n', stages)}
        """);

    // Random structure: any tree of the known keys and values, in flow style.
    private static readonly Gen<string> Tree = Gen.Recursive<string>((depth, tree) => depth >= 6 ? Value : Gen.Frequency(
        (3, Value),
        (1, tree.List[0, 4].Select(items => "[" + string.Join(", ", items) + "]")),
        (2, Gen.Select(Gen.Int[0, Keys.Length - 1], tree).List[0, 5].Select(pairs => "{" + string.Join(", ", pairs.Select(p => $"{Keys[p.Item1]}: {p.Item2}")) + "}"))));

    private static readonly Gen<string> RandomStructure = Gen.Select(Tree, Tree, (a, b) => $"pipelines: {a}\n{b}\n");

    private static readonly Gen<string> DeepNesting = Gen.Select(Gen.Int[30, 20_000], Gen.Int[0, 2], (n, style) => style switch
    {
        0 => "pipelines: " + new string('[', n) + new string(']', n),
        1 => "pipelines: " + string.Concat(Enumerable.Repeat("{a: ", n)) + "1" + new string('}', n),
        _ => "pipelines:\n" + string.Concat(Enumerable.Repeat("- ", n)) + "x\n",
    });

    private static readonly Gen<string> AliasBomb = Gen.Select(Gen.Int[1, 12], Gen.Int[1, 12], Gen.Bool, (fanOut, levels, flow) =>
    {
        var yaml = new StringBuilder("pipelines:\n  - name: a\n    interface: lo\n    direction: ingress\n    stages:\n      - plugin: SourcePolicy\n        settings:\n          x0: &a0 [lol]\n");
        for (int i = 1; i <= levels; i++)
            yaml.Append($"          x{i}: &a{i} [{string.Join(", ", Enumerable.Repeat($"*a{i - 1}", fanOut))}]\n");
        yaml.Append(flow ? $"          routes: *a{levels}\n" : $"          routes: [*a{levels}, *a{levels}]\n");
        return yaml.ToString();
    });

    private static readonly Gen<string> HugeScalar = Gen.Select(ValidShape, Gen.Int[1_000, 2_000_000], Gen.Char["a.:/0 '\"#"], (yaml, n, c) =>
        yaml.Replace("interface: ", "interface: " + new string(c, n) + " ", StringComparison.Ordinal));

    // A valid shape with a few characters inserted, deleted or lines repeated.
    private static readonly Gen<string> Mangled = Gen.Select(ValidShape, Gen.Select(Gen.Int[0, 10_000], Gen.Int[0, 3], Gen.Char["[]{}:-&*!|>#'\"\n\t %@`,?"]).Array[1, 8], (yaml, edits) =>
    {
        var text = new StringBuilder(yaml);
        foreach (var (at, kind, c) in edits)
        {
            int i = at % (text.Length + 1);
            switch (kind)
            {
                case 0: text.Insert(i, c); break;
                case 1 when i < text.Length: text.Remove(i, 1); break;
                case 2: text.Insert(i, text.ToString(i, Math.Min(40, text.Length - i))); break;
                default: text.Insert(i, "\n" + new string(' ', at % 12)); break;
            }
        }
        return text.ToString();
    });

    private static readonly Gen<string> Document = Gen.Frequency(
        (6, ValidShape), (3, RandomStructure), (1, DeepNesting), (1, AliasBomb), (1, HugeScalar), (4, Mangled));

    [Fact]
    public void ValidateGivesOnlyConfigErrors()
    {
        int seconds = int.TryParse(Environment.GetEnvironmentVariable("PLUGINHOST_FUZZ_SECONDS"), out int s) ? s : -1;
        string? seed = Environment.GetEnvironmentVariable("PLUGINHOST_FUZZ_SEED") ?? (seconds > 0 ? null : Seed);
        int cases = 0, refused = 0;
        var clock = Stopwatch.StartNew();

        Document.Sample(yaml =>
        {
            Interlocked.Increment(ref cases);
            if (Validate(yaml, plugins.Catalog) is not null)
                Interlocked.Increment(ref refused);
        }, writeLine: output.WriteLine, seed: seed, iter: seconds > 0 ? -1 : CiIterations, time: seconds, threads: 1,
            print: yaml => ConfigText.Cut(yaml, 3_000));

        output.WriteLine($"config fuzz: {cases:N0} cases in {clock.Elapsed.TotalSeconds:F1} s ({refused:N0} refused with a ConfigException, {cases - refused:N0} valid); seed {seed ?? "random"}");
    }

    // What validate does, in-process, within the case limit: the ConfigException, or null when valid.
    private static ConfigException? Validate(string yaml, PluginCatalog catalog)
    {
        var run = Task.Run(() =>
        {
            try
            {
                var config = ConfigLoader.Parse(yaml, ConfigPath);
                PipelinePlanner.Plan(config, catalog);
                return null;
            }
            catch (ConfigException e)
            {
                _ = e.Message.Length;
                return e;
            }
        });
        if (!run.Wait(CaseLimit))
            throw new TimeoutException($"validate did not finish within {CaseLimit.TotalSeconds} s");
        return run.Result;
    }
}
