using System.Net;

namespace PluginHost.Lab;

/// <summary>Which uplink a burst from one client source took, as the server's interfaces counted it.</summary>
public sealed record PathObservation(IPAddress Source, int Sent, int Received, long Uplink1Packets, long Uplink2Packets)
{
    /// <summary>The uplink that carried at least 95% of what arrived, or null when split or lost.</summary>
    public string? Uplink =>
        Received == 0 ? null
        : Uplink1Packets >= Received * 95L / 100 ? RouterLab.ServerUplink1
        : Uplink2Packets >= Received * 95L / 100 ? RouterLab.ServerUplink2
        : null;
}

/// <summary>Sends UDP from client sources to the server (its address in each source's family) and reads which server uplink received it.</summary>
public static class PathProbe
{
    public const int Port = 9000;

    /// <summary>One burst per source, one after the other, so interface counter deltas belong to one source.</summary>
    public static IReadOnlyList<PathObservation> Measure(RouterLab lab, IEnumerable<IPAddress> sources, int packetsPerSource)
    {
        var results = new List<PathObservation>();
        var list = sources.ToList();
        var receivers = list.Select(RouterLab.ServerAddressFor).Distinct()
            .ToDictionary(a => a, a => UdpReceiver.Start(lab.Server, new IPEndPoint(a, Port)));
        var expected = receivers.Keys.ToDictionary(a => a, _ => 0);
        foreach (var source in list)
        {
            var server = RouterLab.ServerAddressFor(source);
            var before1 = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink1).RxPackets;
            var before2 = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink2).RxPackets;
            int sent = UdpTraffic.Send(lab.Client, source, new IPEndPoint(server, Port), packetsPerSource);
            expected[server] += sent;
            receivers[server].WaitFor(expected[server], TimeSpan.FromSeconds(3));
            var after1 = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink1).RxPackets;
            var after2 = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink2).RxPackets;
            results.Add(new PathObservation(source, sent, 0, after1 - before1, after2 - before2));
        }
        var received = new Dictionary<IPAddress, int>();
        foreach (var receiver in receivers.Values)
            using (receiver)
                foreach (var (source, count) in receiver.Stop())
                    received[source] = count;
        return results.Select(r => r with { Received = received.GetValueOrDefault(r.Source) }).ToList();
    }
}
