using System.Net;
using PluginHost.Compose;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Observe;

namespace PluginHost.Bench.Scenarios;

/// <summary>A forwarding configuration, measured in turn with the others.</summary>
/// <param name="Check">Given what the server received: throws when the configuration under test is not what forwarded it.</param>
/// <param name="Started">Called after the warm-up, before the measured send (a counter's starting point).</param>
internal sealed record ForwardingVariant(string Id, string Label, Action Setup, Action Teardown, Action<long>? Check = null, Action? Started = null);

/// <summary>
/// Rounds over forwarding configurations through one RouterLab, as sections 3 and 7 run them: every round runs every
/// configuration in turn, the order rotating so that none always runs first or last; each sends for a warm-up, then
/// for the measured interval, and what the server's up1 received over it is the figure (Mpps), beside what was sent.
/// </summary>
internal static class ForwardingRounds
{
    public static (Dictionary<string, List<double>> Received, Dictionary<string, List<double>> Sent) Run(RouterLab lab,
        IReadOnlyList<ForwardingVariant> variants, int rounds, double seconds, Func<double, (long Count, double Seconds)> send,
        string section, Action<string> log, CancellationToken cancel)
    {
        // Resolve uplink 1's neighbour with one datagram from the router (ping is not on every machine).
        UdpTraffic.Send(lab.Router, RouterLab.RouterUplink1Address, new IPEndPoint(RouterLab.Uplink1Gateway, 9), 1);
        Thread.Sleep(100);
        var received = variants.ToDictionary(v => v.Id, _ => new List<double>());
        var sent = variants.ToDictionary(v => v.Id, _ => new List<double>());
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < variants.Count; k++)
            {
                cancel.ThrowIfCancellationRequested();
                var v = variants[(k + round) % variants.Count];
                v.Setup();
                try
                {
                    send(0.2); // warm-up: caches, neighbour
                    v.Started?.Invoke();
                    long before = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink1).RxPackets;
                    var (count, elapsed) = send(seconds);
                    Thread.Sleep(100);
                    long arrived = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink1).RxPackets - before;
                    if (arrived < count / 2)
                        throw new BenchException($"{section}, {v.Label}: {count} frames sent, the server received {arrived}");
                    v.Check?.Invoke(arrived);
                    received[v.Id].Add(arrived / elapsed / 1e6);
                    sent[v.Id].Add(count / elapsed / 1e6);
                    log($"{section}: round {round + 1}/{rounds}, {v.Id}: {received[v.Id][^1]:F3} Mpps received, {sent[v.Id][^1]:F3} sent");
                }
                finally
                {
                    v.Teardown();
                }
            }
        }
        return (received, sent);
    }

    /// <summary>Throws unless the pipeline's last stage redirected at least half of what arrived: else the kernel forwarded it.</summary>
    public static void CheckRedirected(HostEngine engine, string pipeline, long received, string what)
    {
        var counters = CounterReader.ReadPinned(PipelineState.Load(engine.Config.RuntimeDirectory, pipeline)
            ?? throw new BenchException($"read {what} counters: no pipeline state"));
        ulong redirected = counters.Stages[^1][StageCounter.Redirected];
        if (redirected < (ulong)(received / 2))
            throw new BenchException($"forwarding through {what}: the chain redirected {redirected} packets, the server received {received}: " +
                "the kernel, not the chain, forwarded them");
    }
}
