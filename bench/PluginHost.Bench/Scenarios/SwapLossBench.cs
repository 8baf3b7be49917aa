using HostYaml = PluginHost.TestSupport.HostYaml;
using PluginHost.Compose;
using PluginHost.Observe;
using System.Diagnostics;
using System.Net;
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
/// Part 4 of issue 5 (loss): a private RouterLab (<c>s&lt;4 hex&gt;-client|router|server</c>) forwards a steady,
/// sequence-numbered UDP stream (client 198.18.1.10 → server 198.18.9.1) through a MarkPolicy + SourcePolicy
/// chain (a HostEngine, tcx on the router's lan0, ingress, the route to uplink 1) while the host swaps
/// generations back to back: MarkPolicy v1 ↔ v2 differ in code, so every apply builds, canaries and swaps
/// in a new generation (both versions compiled before the stream starts). The receiver reports every
/// sequence number missing, duplicated or out of order. Then the same swaps again under a raw-frame flood
/// (<see cref="RawSender"/>), where the server's interface counter is the check.
/// </summary>
public sealed class SwapLossBench(Sandbox sandbox, Repo repo, bool quick, Action<string> log)
{
    public const int PacketsPerSecond = 20_000;
    private const string Pipeline = "swap";

    private readonly string _work = Path.Combine(sandbox.WorkDirectory, "swap-loss");
    private string Plugins => Path.Combine(_work, "plugins");

    public int Swaps => quick ? 20 : 100;

    public SwapLossResult Run(CancellationToken cancel)
    {
        Directory.CreateDirectory(Plugins);
        HostYaml.CopyPlugin(repo.SourcePolicyPlugin, Plugins);
        int version = 1;
        PluginFolder.Replace(repo.MarkPolicyPlugin(version), Plugins, _work);

        string prefix = "s" + Guid.NewGuid().ToString("N")[..4];
        log($"swap loss: building lab {prefix}-client|router|server");
        using var lab = new RouterLab(prefix);
        using var labTeardown = sandbox.OnTeardown($"remove lab {prefix}", lab.Dispose);
        string config = Path.Combine(_work, "host.yaml");
        File.WriteAllText(config, HostYaml.Config(Plugins, Path.Combine(sandbox.BpfRoot, Pipeline), Path.Combine(_work, "run"), Path.Combine(_work, "cache"), HostYaml.Pipeline(Pipeline, lab.Router.Name, RouterLab.RouterLan, $"""
                  - plugin: MarkPolicy
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink1}
                          via: {RouterLab.Uplink1Gateway}

            """)));
        // Old generations retire at once: the swap itself is what is measured, not the grace period.
        var engine = new HostEngine(ConfigLoader.Load(config), NullLoggerFactory.Instance, retireAfter: TimeSpan.Zero);
        using var uninstall = sandbox.OnTeardown("uninstall the swap-loss benchmark's host", engine.Uninstall);

        // Put the other MarkPolicy in place (not timed), then apply: a new generation, swapped in. With retireAfter 0
        // the apply also retires the old one.
        double Swap()
        {
            version = 3 - version;
            PluginFolder.Replace(repo.MarkPolicyPlugin(version), Plugins, _work);
            var apply = Stopwatch.StartNew();
            var result = engine.Apply().Single();
            double ms = apply.Elapsed.TotalMilliseconds;
            if (result.Kind != ApplyKind.Swapped)
                throw new BenchException($"swap MarkPolicy v{3 - version} → v{version}: expected a generation swap, the host did {result.Kind}");
            return ms;
        }

        if (engine.Apply().Single().Kind != ApplyKind.Attached)
            throw new BenchException("attach the swap-loss chain: the host did not attach it");
        Swap(); // both versions compiled and cached from here on
        Swap();
        var destination = new IPEndPoint(RouterLab.ServerAddress, 9100);
        UdpTraffic.Send(lab.Client, RouterLab.ClientSourceA, destination, 3); // resolve the neighbours first
        Thread.Sleep(200);
        uint firstGeneration = State(engine).Generation;

        log($"swap loss: {Swaps} generation swaps under a {PacketsPerSecond:N0} pps UDP stream");
        var applies = new List<double>();
        UdpStreamResult stream;
        var watch = new Stopwatch();
        using (var udp = UdpStream.Start(lab.Client, RouterLab.ClientSourceA, lab.Server, destination, PacketsPerSecond))
        {
            Thread.Sleep(300);
            watch.Start();
            for (int i = 0; i < Swaps; i++)
            {
                cancel.ThrowIfCancellationRequested();
                applies.Add(Swap());
            }
            watch.Stop();
            Thread.Sleep(300);
            stream = udp.Stop();
        }
        var state = State(engine);
        var counters = CounterReader.ReadPinned(state);
        var flood = Flood(lab, Swap, cancel);
        ulong faults = counters.Stages.Aggregate(0ul, (sum, s) => sum + s[StageCounter.MissedTailCalls] + s[StageCounter.GenerationMismatch]);
        log($"swap loss: {stream}");
        return new SwapLossResult(Swaps, (int)(state.Generation - firstGeneration), watch.Elapsed.TotalSeconds, Summary.Of(applies),
            PacketsPerSecond, stream.Sent, stream.Received, stream.Lost, stream.Reordered, stream.Duplicates, stream.ReceiveBufferErrors,
            counters.Stages[^1][StageCounter.Redirected], faults) { Flood = flood };
    }

    // The same swaps under a raw-frame flood as fast as the router forwards it (bench/traffic/rawsend.c, one CPU):
    // what the server's up1 counted against what was sent. Frames carry no sequence numbers; the count is the check.
    private SwapFloodResult Flood(RouterLab lab, Func<double> swap, CancellationToken cancel)
    {
        var sender = RawSender.Build(repo, sandbox.WorkDirectory);
        RawSender.PrepareSink(lab);
        sender.Send(lab, 0.2); // the neighbour, caches
        double seconds = quick ? 3 : 10;
        log($"swap loss: {Swaps} generation swaps under a raw-frame flood ({seconds:F0} s)");
        long before = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink1).RxPackets;
        var flood = Task.Run(() => sender.Send(lab, seconds));
        Thread.Sleep(300);
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < Swaps && !flood.IsCompleted; i++)
        {
            cancel.ThrowIfCancellationRequested();
            swap();
        }
        double swapping = watch.Elapsed.TotalSeconds;
        bool covered = !flood.IsCompleted;
        var (sent, elapsed) = flood.GetAwaiter().GetResult();
        Thread.Sleep(200);
        long received = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink1).RxPackets - before;
        if (!covered)
            throw new BenchException($"swap under a flood: the {seconds:F0} s flood ended before {Swaps} swaps did");
        log($"swap loss: flood sent {sent:N0} frames in {elapsed:F1} s, the server received {received:N0}, swaps took {swapping:F1} s");
        return new SwapFloodResult(Swaps, swapping, elapsed, sent, received, sent / elapsed / 1e6, RawSender.FrameBytes + 4);
    }

    private static PipelineState State(HostEngine engine) =>
        PipelineState.Load(engine.Config.RuntimeDirectory, Pipeline) ?? throw new BenchException("read the swap-loss pipeline: no state");
}
