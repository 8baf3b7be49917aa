using HostYaml = PluginHost.TestSupport.HostYaml;
using PluginHost.Compose;
using PluginHost.Observe;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Lab;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 3 of issue 5: real frames through a private RouterLab (<c>f&lt;4 hex&gt;-client|router|server</c>).
/// <c>bench/traffic/rawsend.c</c>, compiled at run time with <c>cc</c>, sends one fixed 64-byte UDP frame from
/// the client's lan0 (source 198.18.1.10, to 198.18.8.1, which the server blackholes) through a raw socket that bypasses the qdisc, pinned
/// to one CPU; the veth hands each frame to the router on the same CPU, so the sender's rate is bounded by
/// the router's cost. What the server's up1 receives over the interval is the figure. Configurations, run in
/// turn in every round: the kernel's forwarding; kernel policy routing (<c>ip rule from 198.18.1.10 table 100</c>,
/// alone and behind 99 rules that do not match); PluginHost (a HostEngine, as the host runs it, tcx on the
/// router's lan0, ingress) with one SourcePolicy stage, and with four (the hit in the last).
/// </summary>
/// <param name="quick">One round of 0.5 s per configuration instead of 3 rounds of 2 s.</param>
public sealed class ForwardingBench(Sandbox sandbox, Repo repo, bool quick, Action<string> log)
{
    private int Rounds => quick ? 1 : 3;
    private double Seconds => quick ? 0.5 : 2;
    private const string Pipeline = "fwd";
    private const int RuleTable = 100;
    private const int RulePref = 1100;

    private readonly string _work = Path.Combine(sandbox.WorkDirectory, "forwarding");

    public ForwardingResult Run(CancellationToken cancel)
    {
        Directory.CreateDirectory(_work);
        var sender = RawSender.Build(repo, sandbox.WorkDirectory);
        string plugins = Path.Combine(_work, "plugins");
        Directory.CreateDirectory(plugins);
        HostYaml.CopyPlugin(repo.SourcePolicyPlugin, plugins);

        string prefix = "f" + Guid.NewGuid().ToString("N")[..4];
        log($"forwarding: building lab {prefix}-client|router|server");
        using var lab = new RouterLab(prefix);
        using var labTeardown = sandbox.OnTeardown($"remove lab {prefix}", lab.Dispose);
        string router = lab.Router.Name;
        RawSender.PrepareSink(lab);
        Ip.Run("-n", router, "route", "add", RawSender.SinkNetwork, "via", RouterLab.Uplink1Gateway.ToString(),
            "dev", RouterLab.RouterUplink1, "table", RuleTable.ToString(CultureInfo.InvariantCulture));

        HostEngine? engine = null;
        IDisposable? uninstall = null;
        void Attach(int stages)
        {
            string config = WriteConfig(lab, plugins, stages);
            engine = new HostEngine(ConfigLoader.Load(config), NullLoggerFactory.Instance);
            uninstall = sandbox.OnTeardown("uninstall the forwarding benchmark's host", engine.Uninstall);
            var result = engine.Apply().Single();
            if (result.Kind != ApplyKind.Attached)
                throw new BenchException($"attach {stages}-stage chain: the host did {result.Kind}");
        }
        void Detach()
        {
            uninstall?.Dispose();
            uninstall = null;
            engine = null;
        }
        // On the way out (an error, Ctrl-C), detach before the lab goes: disposed before the lab's registration.
        using var detachOnExit = sandbox.OnTeardown("detach the forwarding benchmark's chain", Detach);
        void Rules(int count)
        {
            for (int i = 0; i < count - 1; i++) // the non-matching ones first: every packet walks past them
                Ip.Run("-n", router, "rule", "add", "from", $"10.77.{i}.0/24", "table", "101", "pref", (RulePref - 100 + i).ToString(CultureInfo.InvariantCulture));
            Ip.Run("-n", router, "rule", "add", "from", RouterLab.ClientSourceA.ToString(), "table", RuleTable.ToString(CultureInfo.InvariantCulture),
                "pref", RulePref.ToString(CultureInfo.InvariantCulture));
        }
        void NoRules(int count)
        {
            for (int i = 0; i < count - 1; i++)
                Ip.Run("-n", router, "rule", "del", "pref", (RulePref - 100 + i).ToString(CultureInfo.InvariantCulture));
            Ip.Run("-n", router, "rule", "del", "pref", RulePref.ToString(CultureInfo.InvariantCulture));
        }

        ForwardingVariant[] variants =
        [
            new("kernel", "(a) kernel forwarding", () => { }, () => { }),
            new("rule-1", "(b) kernel policy routing, 1 `ip rule`", () => Rules(1), () => NoRules(1)),
            new("rule-100", "(b) kernel policy routing, 100 `ip rule`s (the match last)", () => Rules(100), () => NoRules(100)),
            new("chain-1", "(c) PluginHost, SourcePolicy (1 stage)", () => Attach(1), Detach,
                received => ForwardingRounds.CheckRedirected(engine!, Pipeline, received, "PluginHost")),
            new("chain-4", "(d) PluginHost, SourcePolicy × 4 (the hit in the last)", () => Attach(4), Detach,
                received => ForwardingRounds.CheckRedirected(engine!, Pipeline, received, "PluginHost")),
        ];
        var (received, sent) = ForwardingRounds.Run(lab, variants, Rounds, Seconds, duration => sender.Send(lab, duration), "forwarding", log, cancel);

        Summary Ratio(string id, string baseline) => Summary.Of(received[id].Zip(received[baseline], (a, b) => a / b).ToList());
        var rows = variants.Select(v => new ForwardingRow(v.Id, v.Label, Summary.Of(received[v.Id]), Summary.Of(sent[v.Id]),
            Ratio(v.Id, "kernel"), Ratio(v.Id, "rule-100"))).ToList();
        return new ForwardingResult(rows, Rounds, Seconds, RawSender.FrameBytes + 4, RawSender.OneCpu);
    }

    private string WriteConfig(RouterLab lab, string plugins, int stages)
    {
        var yaml = new System.Text.StringBuilder();
        for (int i = 0; i < stages; i++)
        {
            yaml.Append($"""
                      - plugin: SourcePolicy
                        settings:
                          routes:
                            - from: 10.{i}.0.0/16
                              interface: {RouterLab.RouterUplink2}
                              via: {RouterLab.Uplink2Gateway}

                """);
            if (i == stages - 1)
                yaml.Append($"""
                                - from: {RouterLab.ClientSourceA}/32
                                  interface: {RouterLab.RouterUplink1}
                                  via: {RouterLab.Uplink1Gateway}

                    """);
        }
        string path = Path.Combine(_work, $"host-{stages}.yaml");
        File.WriteAllText(path, HostYaml.Config(plugins, Path.Combine(sandbox.BpfRoot, Pipeline), Path.Combine(_work, "run"), Path.Combine(_work, "cache"),
            HostYaml.Pipeline(Pipeline, lab.Router.Name, RouterLab.RouterLan, yaml.ToString())));
        return path;
    }
}
