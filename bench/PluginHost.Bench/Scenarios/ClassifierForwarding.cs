using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Observe;
using HostYaml = PluginHost.TestSupport.HostYaml;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 4 of issue 12: real frames through a private RouterLab (<c>c&lt;4 hex&gt;-client|router|server</c>), sent by
/// <c>bench/traffic/rawsend.c</c> as in the forwarding section. The frame is one UDP header that the ClassBench 10k set
/// matches first at a line deep in the set (chosen here: the deepest line that can match a forwardable UDP header
/// first, the catch-all excepted). Configurations, each round in turn: (a) FiveTuplePolicy with the 10k set, that line
/// redirecting to up1 and every other line <c>next</c>; (b) FiveTuplePolicy with 10 rules (nine of the set's first
/// lines that miss the frame, then that line); (c) the kernel with the same 10k rules as an nftables chain on the
/// router's forward hook; (d) the kernel alone. The router routes the frame's destination to up1 and the server
/// blackholes it, so (c) and (d) forward it like (a) and (b) redirect it.
/// </summary>
/// <param name="quick">One round of 0.5 s per configuration instead of 3 rounds of 2 s.</param>
public sealed class ClassifierForwarding(Sandbox sandbox, Repo repo, bool quick, Action<string> log)
{
    public const ushort SourcePort = 40000; // what rawsend sends from
    private const string Pipeline = "cfwd";
    private int Rounds => quick ? 1 : 3;
    private double Seconds => quick ? 0.5 : 2;

    private readonly string _work = Path.Combine(sandbox.WorkDirectory, "classifier-forwarding");

    public ClassifierForwardingResult Run(IReadOnlyList<ClassBenchRule> rules, CancellationToken cancel)
    {
        Directory.CreateDirectory(_work);
        var (header, line) = DeepHeader(rules);
        var source = IPAddress.Parse(ClassBench.Address(header.Source));
        var destination = IPAddress.Parse(ClassBench.Address(header.Destination));
        log($"classifier forwarding: frame {header}, first matched by line {line} of {rules.Count:N0}");

        string redirect = $"redirect {RouterLab.RouterUplink1} {RouterLab.Uplink1Gateway}";
        string large = Path.Combine(_work, "acl1-10k-forward.rules");
        ClassBench.WriteRulesFile(large, rules, i => i == line ? redirect : null);
        var few = rules.Take(line).Where(r => !r.Matches(header)).Take(ClassifierBench.SmallRules - 1).Append(rules[line]).ToList();
        string small = Path.Combine(_work, "acl1-10k-first9-forward.rules");
        ClassBench.WriteRulesFile(small, few, i => i == few.Count - 1 ? redirect : null);
        string nft = Path.Combine(_work, "acl1-10k.nft");
        NftChain.Write(nft, rules, line);

        var sender = RawSender.Build(repo, sandbox.WorkDirectory);
        string plugins = Path.Combine(_work, "plugins");
        Directory.CreateDirectory(plugins);
        HostYaml.CopyPlugin(Path.Combine(repo.PluginsDirectory, "FiveTuplePolicy"), plugins);

        string prefix = "c" + Guid.NewGuid().ToString("N")[..4];
        log($"classifier forwarding: building lab {prefix}-client|router|server");
        using var lab = new RouterLab(prefix);
        using var labTeardown = sandbox.OnTeardown($"remove lab {prefix}", lab.Dispose); // the nftables table goes with the router's namespace
        string router = lab.Router.Name;
        Ip.Run("-n", lab.Server.Name, "route", "add", "blackhole", $"{destination}/32");
        Ip.Run("-n", router, "route", "add", $"{destination}/32", "via", RouterLab.Uplink1Gateway.ToString(), "dev", RouterLab.RouterUplink1);

        var watch = Stopwatch.StartNew();
        NftChain.Load(lab.Router, nft);
        double nftLoadMs = watch.Elapsed.TotalMilliseconds;
        log($"classifier forwarding: nft -f of {rules.Count:N0} rules took {nftLoadMs:F0} ms");
        using var nftTeardown = sandbox.OnTeardown($"delete nftables table {NftChain.Table} in {router}", () => NftChain.Remove(lab.Router));

        HostEngine? engine = null;
        IDisposable? uninstall = null;
        var attachMs = new List<double>();
        void Attach(string file, int count)
        {
            string config = WriteConfig(lab, plugins, file);
            engine = new HostEngine(ConfigLoader.Load(config), NullLoggerFactory.Instance);
            uninstall = sandbox.OnTeardown("uninstall the classifier forwarding benchmark's host", engine.Uninstall);
            var attachWatch = Stopwatch.StartNew();
            var result = engine.Apply().Single();
            if (count == rules.Count)
                attachMs.Add(attachWatch.Elapsed.TotalMilliseconds);
            if (result.Kind != ApplyKind.Attached)
                throw new BenchException($"attach FiveTuplePolicy with {count} rules: the host did {result.Kind}");
        }
        void Detach()
        {
            uninstall?.Dispose();
            uninstall = null;
            engine = null;
        }
        using var detachOnExit = sandbox.OnTeardown("detach the classifier forwarding benchmark's chain", Detach);
        long countedBefore = 0;

        ForwardingVariant[] variants =
        [
            new("ftp-10k", $"(a) FiveTuplePolicy, {rules.Count:N0} rules (the match at rule {line})", () => Attach(large, rules.Count), Detach,
                received => ForwardingRounds.CheckRedirected(engine!, Pipeline, received, "FiveTuplePolicy")),
            new("ftp-10", $"(b) FiveTuplePolicy, {few.Count} rules (the match last)", () => Attach(small, few.Count), Detach,
                received => ForwardingRounds.CheckRedirected(engine!, Pipeline, received, "FiveTuplePolicy")),
            new("nft-10k", $"(c) kernel + nftables, {rules.Count:N0} rules on the forward hook (the match at rule {line})",
                () => NftChain.Hook(lab.Router), () => NftChain.Unhook(lab.Router),
                received => CheckCounted(NftChain.Counted(lab.Router) - countedBefore, received),
                Started: () => countedBefore = NftChain.Counted(lab.Router)),
            new("kernel", "(d) kernel forwarding, no rules", () => { }, () => { }),
        ];
        var (received, sent) = ForwardingRounds.Run(lab, variants, Rounds, Seconds,
            duration => sender.Send(lab, duration, source, destination, header.DestinationPort), "classifier forwarding", log, cancel);

        Summary Ratio(string a, string b) => Summary.Of(received[a].Zip(received[b], (x, y) => x / y).ToList());
        var rows = variants.Select(v => new ClassifierForwardingRow(v.Id, v.Label, Summary.Of(received[v.Id]), Summary.Of(sent[v.Id]))).ToList();
        List<ClassifierRatio> ratios =
        [
            new("ftp10k-over-nft", "(a) / (c): FiveTuplePolicy against nftables, 10k rules", Ratio("ftp-10k", "nft-10k"), 5.0, AtMost: false),
            new("ftp10k-over-ftp10", "(a) / (b): 10k rules against 10", Ratio("ftp-10k", "ftp-10"), 0.9, AtMost: false),
            new("ftp10k-over-kernel", "(a) / (d): 10k rules against the kernel without rules", Ratio("ftp-10k", "kernel"), 0, AtMost: false),
            new("nft-over-kernel", "(c) / (d): nftables' 10k rules against the kernel without rules", Ratio("nft-10k", "kernel"), 0, AtMost: false),
        ];
        return new ClassifierForwardingResult(rows, ratios, Rounds, Seconds, RawSender.FrameBytes + 4, RawSender.OneCpu, header.ToString(), line,
            rules.Count, nftLoadMs, Summary.Of(attachMs).Median);
    }

    /// <summary>
    /// A UDP header from <see cref="SourcePort"/> that the set matches first at the deepest line it can (the catch-all
    /// excepted), with unicast, non-lab addresses the kernel forwards; the line's index.
    /// </summary>
    public static (TraceHeader Header, int Line) DeepHeader(IReadOnlyList<ClassBenchRule> rules)
    {
        var random = new Random(12);
        for (int i = rules.Count - 1; i >= 0; i--)
        {
            var r = rules[i];
            if (r.ProtocolLow > 17 || r.ProtocolHigh < 17 || SourcePort < r.SourcePortLow || SourcePort > r.SourcePortHigh
                || (r.SourceLength == 0 && r.DestinationLength == 0))
                continue;
            ushort port = r.DestinationPortLow == 0 && r.DestinationPortHigh == ushort.MaxValue ? (ushort)9 : r.DestinationPortLow;
            for (int attempt = 0; attempt < 64; attempt++)
            {
                var header = new TraceHeader(Inside(r.Source, r.SourceLength, random), Inside(r.Destination, r.DestinationLength, random), SourcePort, port, 17, i);
                if (Forwardable(header.Source) && Forwardable(header.Destination) && header.Source != header.Destination
                    && ClassBench.FirstMatch(rules, header) == i)
                    return (header, i);
            }
        }
        throw new BenchException("choose the forwarded frame: no line of the set matches a forwardable UDP header first");
    }

    private static uint Inside(uint prefix, int length, Random random)
    {
        uint hostMask = length == 32 ? 0 : uint.MaxValue >> length;
        return prefix | ((uint)random.NextInt64(0, 1L << 32) & hostMask);
    }

    // Unicast, not 0/8, loopback, link-local, multicast or class E, not the lab's 198.18.0.0/15, not a .0 or .255 host.
    private static bool Forwardable(uint a) =>
        (a >> 24) is not (0 or 127) && (a >> 24) < 224 && (a & 0xFFFF0000) != 0xA9FE0000 && (a & 0xFFFE0000) != 0xC6120000 && (a & 0xFF) is not (0 or 255);

    private static void CheckCounted(long counted, long received)
    {
        if (counted < received / 2)
            throw new BenchException($"forwarding through nftables: the deep rule counted {counted} packets, the server received {received}: " +
                "the frames did not walk the chain down to it");
    }

    private string WriteConfig(RouterLab lab, string plugins, string rulesFile)
    {
        string path = Path.Combine(_work, $"host-{Path.GetFileNameWithoutExtension(rulesFile)}.yaml");
        File.WriteAllText(path, HostYaml.Config(plugins, Path.Combine(sandbox.BpfRoot, Pipeline), Path.Combine(_work, "run"), Path.Combine(_work, "cache"),
            HostYaml.Pipeline(Pipeline, lab.Router.Name, RouterLab.RouterLan, $"""
                      - plugin: FiveTuplePolicy
                        settings:
                          rulesFile: {Path.GetFileName(rulesFile)}
                          defaultAction: next

                """)));
        return path;
    }
}
