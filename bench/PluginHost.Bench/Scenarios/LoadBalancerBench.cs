using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Packets;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Plugins.LoadBalancer.Maglev;
using PluginHost.Runtime;
using HostYaml = PluginHost.TestSupport.HostYaml;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Issue 13: the LoadBalancer stage's cost per packet for an established flow and a new one, IPv4 and IPv6, beside
/// SourcePolicy (IPv4) and IPv6 (IPv6) alone; then the time to build a 65,537-entry Maglev table in C# and to apply a
/// backend change to such a table through the host.
/// <para>BPF_PROG_TEST_RUN repeats one buffer, so only the first repeat of a frame is a new flow. An established flow is
/// one frame repeated (as every per-packet row); a new flow is that plus what a flow never seen adds, taken one call per
/// frame: each round sends fresh frames (a source of their own) once — new flows — and then the same frames again —
/// established — in one-packet calls, and the difference (paired per round) is the new-flow penalty: the flow-table miss,
/// the hash, the ring lookup, the LRU insert and the new-flow count.</para>
/// </summary>
public sealed class LoadBalancerBench(Sandbox sandbox, Repo repo, Sampling sampling, bool quick, Action<string> log)
{
    public const int TableSize = 65_537;
    public const int Backends = 16;
    private const int FlowTableSize = 524_288; // every round's fresh flows fit: no eviction in the measurement
    private const string Pipeline = "lb";

    private static readonly IPAddress Source6 = IPAddress.Parse("2001:db8:1::10"), Destination6 = IPAddress.Parse("2001:db8:9::1");

    private int FrameCount => quick ? 1024 : sampling.RandomFrames;

    /// <summary>Two services, 198.18.9.0/24 and 2001:db8:9::/48, each over out1 and out2.</summary>
    public static readonly string Stage = $"""
        - plugin: LoadBalancer
          settings:
            flowTableSize: {FlowTableSize}
            services:
              - to: 198.18.9.0/24
                nexthops:
                  - {"{"} interface: {Sandbox.Out1}, via: 198.18.2.2 {"}"}
                  - {"{"} interface: {Sandbox.Out2}, via: 198.18.3.2 {"}"}
              - to: 2001:db8:9::/48
                nexthops:
                  - {"{"} interface: {Sandbox.Out1}, via: "fe80::2" {"}"}
                  - {"{"} interface: {Sandbox.Out2}, via: "fe80::3" {"}"}
        """;

    public LoadBalancerResult Run(CancellationToken cancel)
    {
        var perPacket = PerPacket(cancel);
        var builds = Builds(cancel);
        var changes = Changes(cancel);
        return new LoadBalancerResult(perPacket, FrameCount, sampling.Samples, sampling.CallsPerSample, sampling.Repeat, builds, changes);
    }

    private IReadOnlyList<LoadBalancerPacketRow> PerPacket(CancellationToken cancel)
    {
        using var builder = new ChainBuilder(sandbox);
        log("loadbalancer: building LoadBalancer, SourcePolicy and IPv6 alone");
        using var balancer = builder.Build("lb-alone", repo.PluginsDirectory, [Stage]);
        using var policy = builder.Build("lb-sourcepolicy", repo.PluginsDirectory, [PolicyRoutes.StageYaml(PolicyRoutes.Stage(0, last: true))]);
        using var ipv6 = builder.Build("lb-ipv6", repo.PluginsDirectory, [OtherPlugins.Ipv6Stage]);
        var lb = balancer.Chain.Entry;
        byte[] one4 = Packets.Frames.Ipv4Udp(PolicyRoutes.Source, PolicyRoutes.Destination, 64), one6 = Packets.Frames.Ipv6Udp(Source6, Destination6, 64);
        foreach (var (program, frame, what) in new[] { (lb, one4, "LoadBalancer IPv4"), (lb, one6, "LoadBalancer IPv6"), (policy.Chain.Entry, one4, "SourcePolicy"), (ipv6.Chain.Entry, one6, "IPv6") })
            Verify(program, frame, what);

        var samples = new Dictionary<string, List<double>>();
        void Add(string key, double value) => (samples.TryGetValue(key, out var list) ? list : samples[key] = []).Add(value);
        var order = new Random(13);
        for (int round = 0; round < sampling.Samples; round++)
        {
            log($"loadbalancer: per-packet round {round + 1}/{sampling.Samples}: {FrameCount:N0} new flows per family, then established ones");
            var blocks = new List<Action>
            {
                () => Add("est4", TestRunTimer.Repeated(lb, one4, sampling.CallsPerSample, sampling.Repeat, cancel)),
                () => Add("est6", TestRunTimer.Repeated(lb, one6, sampling.CallsPerSample, sampling.Repeat, cancel)),
                () => Add("sp4", TestRunTimer.Repeated(policy.Chain.Entry, one4, sampling.CallsPerSample, sampling.Repeat, cancel)),
                () => Add("ipv6", TestRunTimer.Repeated(ipv6.Chain.Entry, one6, sampling.CallsPerSample, sampling.Repeat, cancel)),
            };
            foreach (bool v6 in new[] { false, true })
            {
                var fresh = Fresh(v6, round);
                string f = v6 ? "6" : "4";
                blocks.Add(() =>
                {
                    Verify(lb, fresh[0], $"LoadBalancer, a new IPv{f} flow");
                    Add("new1-" + f, TestRunTimer.PerFrame(lb, fresh.Skip(1).ToList(), 1, order, cancel));
                    Add("est1-" + f, TestRunTimer.PerFrame(lb, fresh.Skip(1).ToList(), 1, order, cancel)); // the same flows, now established
                });
            }
            order.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(blocks));
            foreach (var block in blocks)
                block();
        }

        Summary Of(string key) => Summary.Of(samples[key]);
        Summary Paired(string a, string b, Func<double, double, double> combine) => Summary.Of(samples[a].Zip(samples[b], combine).ToList());
        // Per round: the established figure plus that round's new-flow penalty.
        Summary NewFlow(string f) => Summary.Of(samples["est" + f].Zip(samples["new1-" + f].Zip(samples["est1-" + f], (n, e) => n - e), (e, p) => e + p).ToList());
        return
        [
            new("established", $"LoadBalancer, established flow (one frame, {sampling.Repeat} repeats a call)", "ns", Of("est4"), Of("est6")),
            new("new", "LoadBalancer, new flow (established + new-flow penalty, paired per round)", "ns", NewFlow("4"), NewFlow("6")),
            new("penalty", "new-flow penalty: new − established, one call per frame, the same frames", "ns",
                Paired("new1-4", "est1-4", (n, e) => n - e), Paired("new1-6", "est1-6", (n, e) => n - e)),
            new("new-one-per-call", "raw: new flows, one call per frame (carries a one-packet timed loop)", "ns", Of("new1-4"), Of("new1-6")),
            new("established-one-per-call", "raw: the same flows established, one call per frame", "ns", Of("est1-4"), Of("est1-6")),
            new("reference", "SourcePolicy alone, hit (IPv4) · IPv6 alone, hit (IPv6)", "ns", Of("sp4"), Of("ipv6")),
            new("established-over-reference", "LoadBalancer established / reference", "×", Paired("est4", "sp4", (a, b) => a / b), Paired("est6", "ipv6", (a, b) => a / b)),
            new("new-over-reference", "LoadBalancer new flow / reference", "×",
                Summary.Of(samples["est4"].Select((e, i) => (e + samples["new1-4"][i] - samples["est1-4"][i]) / samples["sp4"][i]).ToList()),
                Summary.Of(samples["est6"].Select((e, i) => (e + samples["new1-6"][i] - samples["est1-6"][i]) / samples["ipv6"][i]).ToList())),
        ];
    }

    // Frames of flows no round used before: a source address per frame (10.R.x.y, 2001:db8:1:R::x), UDP to the service.
    private List<byte[]> Fresh(bool v6, int round) => [.. Enumerable.Range(0, FrameCount + 1).Select(i => v6
        ? Packets.Frames.Ipv6Udp(IPAddress.Parse($"2001:db8:1:{round + 1:x}::{i + 1:x}"), Destination6, 64)
        : Packets.Frames.Ipv4Udp(new IPAddress([10, (byte)(round + 1), (byte)(i >> 8), (byte)i]), PolicyRoutes.Destination, 64))];

    private static void Verify(BpfProgram program, byte[] frame, string what)
    {
        for (int i = 0; i < 2; i++) // new, then established
            if (program.TestRun(frame).ReturnValue != Expectation.TcActRedirect)
                throw new BenchException($"verify {what}: expected a redirect on its {(i == 0 ? "first" : "second")} packet");
    }

    // The C# build alone (what every change of a service's backends runs), over 16 and 256 backends.
    private IReadOnlyList<LoadBalancerBuildRow> Builds(CancellationToken cancel)
    {
        int runs = quick ? 5 : 20;
        var rows = new List<LoadBalancerBuildRow>();
        foreach (int n in new[] { Backends, 256 })
        {
            var backends = Enumerable.Range(0, n).Select(i => new MaglevBackend($"out{1 + i % 2} 198.18.{2 + i % 2}.{2 + i / 2}", 1)).ToList();
            MaglevTable.Build(backends, TableSize); // JIT first
            var ms = new List<double>();
            for (int r = 0; r < runs; r++)
            {
                cancel.ThrowIfCancellationRequested();
                var watch = Stopwatch.StartNew();
                MaglevTable.Build(backends, TableSize);
                ms.Add(watch.Elapsed.TotalMilliseconds);
            }
            rows.Add(new LoadBalancerBuildRow($"build-{n}", $"MaglevTable.Build, {TableSize:N0} entries, {n} backends", runs, Summary.Of(ms)));
        }
        log($"loadbalancer: Maglev builds: {string.Join(", ", rows.Select(r => $"{r.Label} {r.Ms.Median:F2} ms"))}");
        return rows;
    }

    // A live host with one service of a 65,537-entry table over 16 backends: a weight change and a drain, each undone.
    private IReadOnlyList<ClassifierUpdateRow> Changes(CancellationToken cancel)
    {
        string work = Path.Combine(sandbox.WorkDirectory, "loadbalancer");
        string plugins = Path.Combine(work, "plugins");
        Directory.CreateDirectory(plugins);
        HostYaml.CopyPlugin(Path.Combine(repo.PluginsDirectory, "LoadBalancer"), plugins);
        string backends = string.Join("", Enumerable.Range(0, Backends).Select(i =>
            $"                  - {{ name: b{i}, service: web, interface: out{1 + i % 2}, via: 198.18.{2 + i % 2}.{2 + i / 2} }}\n"));
        string config = Path.Combine(work, "host.yaml");
        File.WriteAllText(config, HostYaml.Config(plugins, Path.Combine(sandbox.BpfRoot, Pipeline), Path.Combine(work, "run"), Path.Combine(work, "cache"),
            HostYaml.Pipeline(Pipeline, sandbox.Namespace.Name, Sandbox.Input, $"""
                      - plugin: LoadBalancer
                        settings:
                          services:
                            - name: web
                              to: 198.18.9.0/24
                              tableSize: {TableSize}
                          backends:
            {backends}
            """)));
        var engine = new HostEngine(ConfigLoader.Load(config), NullLoggerFactory.Instance);
        using var uninstall = sandbox.OnTeardown("uninstall the load balancer benchmark's host", engine.Uninstall);
        log($"loadbalancer: attaching a {TableSize:N0}-entry service over {Backends} backends");
        if (engine.Apply().Single().Kind != ApplyKind.Attached)
            throw new BenchException("attach the load balancer benchmark's pipeline: not attached");

        CommandRequest Request(string verb, params (string, string)[] args) => new("backend", verb, args.ToDictionary(a => a.Item1, a => a.Item2), Pipeline);
        var weight = (Request("weight", ("name", "b3"), ("weight", "2")), Request("weight", ("name", "b3"), ("weight", "1")));
        var drain = (Request("drain", ("name", "b3")), Request("undrain", ("name", "b3")));
        // The first commands JIT-compile the command path: not measured (see ClassifierUpdates).
        for (int i = 0; i < 10; i++)
            foreach (var (a, b) in new[] { weight, drain })
            {
                CommandTiming.Run(engine, a);
                CommandTiming.Run(engine, b);
            }
        Thread.Sleep(TimeSpan.FromSeconds(1));
        int pairs = quick ? 10 : 50;
        var rows = new List<ClassifierUpdateRow>();
        foreach (var (id, label, (a, b)) in new[] { ("weight", "backend weight b3 1 → 2 and back", weight), ("drain", "backend drain b3 and undrain", drain) })
        {
            log($"loadbalancer: {pairs} × {label}");
            var runs = new List<CommandTiming.Timed>();
            for (int i = 0; i < pairs; i++)
            {
                cancel.ThrowIfCancellationRequested();
                runs.Add(CommandTiming.Run(engine, a));
                runs.Add(CommandTiming.Run(engine, b));
            }
            rows.Add(CommandTiming.Row(id, $"{label} ({TableSize:N0}-entry table, {Backends} backends): rebuild, write, flip", runs, null));
        }
        return rows;
    }
}
