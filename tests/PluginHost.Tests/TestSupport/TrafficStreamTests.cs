using System.Net;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.TestSupport;

/// <summary>
/// The steady traffic generators of the hot-reload lab tests, through plain kernel forwarding (no BPF):
/// the baseline every "zero loss while reloading" test relies on.
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class TrafficStreamTests
{
    private const int UdpPort = 9100;
    private const int TcpPort = 9101;
    private const int PacketsPerSecond = 20_000;
    private static readonly TimeSpan RunTime = TimeSpan.FromSeconds(3);

    private readonly ITestOutputHelper _output;

    public TrafficStreamTests(ITestOutputHelper output) => _output = output;

    /// <summary>A 5-char tag unique to this run, so parallel runs never share namespaces.</summary>
    private static string UniquePrefix() => "s" + Guid.NewGuid().ToString("N")[..4];

    [KernelFact]
    public void UdpAndTcpStreamsCrossTheRouterWithoutLoss()
    {
        using var lab = new RouterLab(UniquePrefix());
        var udpDestination = new IPEndPoint(RouterLab.ServerAddress, UdpPort);
        var tcpDestination = new IPEndPoint(RouterLab.ServerAddress, TcpPort);
        WarmUpNeighbours(lab, udpDestination);

        UdpStreamResult udp;
        TcpStreamResult tcp;
        using (var tcpStream = TcpStream.Start(lab.Client, RouterLab.ClientSourceA, lab.Server, tcpDestination))
        using (var udpStream = UdpStream.Start(lab.Client, RouterLab.ClientSourceA, lab.Server, udpDestination,
                   PacketsPerSecond, maxDuration: TimeSpan.FromSeconds(30)))
        {
            Thread.Sleep(RunTime);
            Assert.True(udpStream.Received > 0, "no UDP datagram arrived while the stream ran");
            Assert.True(tcpStream.BytesReceived > 0, "no TCP byte arrived while the stream ran");
            udp = udpStream.Stop();
            tcp = tcpStream.Stop();
        }
        _output.WriteLine($"udp: {udp}");
        _output.WriteLine($"tcp: {tcp}");

        Assert.False(udp.TimedOut);
        Assert.True(udp.Sent >= PacketsPerSecond * RunTime.TotalSeconds * 0.9, $"sent only {udp.Sent}: {udp}");
        Assert.True(udp.ReceiveBufferErrors == 0, $"the receiving socket overflowed (not a datapath loss): {udp}");
        Assert.True(udp.Lost == 0, $"lost {udp.Lost}: {udp}");
        Assert.Equal(udp.Sent, udp.Received);
        Assert.Equal(0, udp.Duplicates);
        Assert.True(udp.PacketsPerSecond >= 18_000, $"rate {udp.PacketsPerSecond:0} pps < 18000: {udp}");

        Assert.False(tcp.Reset, $"tcp: {tcp}");
        Assert.Null(tcp.Error);
        Assert.True(tcp.BytesSent > 0);
        Assert.Equal(tcp.BytesSent, tcp.BytesReceived);
    }

    [KernelFact]
    public void UdpStreamReportsWhatTheRouterDropped()
    {
        using var lab = new RouterLab(UniquePrefix());
        var destination = new IPEndPoint(RouterLab.ServerAddress, UdpPort);
        WarmUpNeighbours(lab, destination);

        UdpStreamResult result;
        using (var stream = UdpStream.Start(lab.Client, RouterLab.ClientSourceA, lab.Server, destination, 5_000,
                   maxDuration: TimeSpan.FromSeconds(30)))
        {
            Thread.Sleep(300);
            // The router loses its route to the server for a moment: a run of sequence numbers never arrives,
            // and the ICMP host-unreachable errors it answers with (rate-limited) fail a few sends, which are retried, not skipped.
            Ip.Run("-n", lab.Router.Name, "route", "replace", "unreachable", RouterLab.ServerNetwork);
            Thread.Sleep(300);
            Ip.Run("-n", lab.Router.Name, "route", "replace", RouterLab.ServerNetwork,
                "via", RouterLab.Uplink1Gateway.ToString(), "dev", RouterLab.RouterUplink1);
            // Datagrams without the stream's tag arrive on its port and are not counted as its own.
            UdpTraffic.Send(lab.Client, RouterLab.ClientSourceB, destination, 5);
            Thread.Sleep(300);
            result = stream.Stop();
        }
        _output.WriteLine(result.ToString());

        Assert.True(result.Lost > 500, $"expected the router to drop ~1500 datagrams: {result}");
        Assert.Equal(result.Sent, result.Received + result.Lost);
        Assert.NotEmpty(result.LostRanges);
        Assert.Equal(result.Lost, result.LostRanges.Sum(r => r.To - r.From + 1)); // one outage: a few ranges
        Assert.All(result.LostRanges, r => Assert.InRange(r.From, 1, result.Sent - 2));
        Assert.Equal(0, result.ReceiveBufferErrors);
        Assert.Equal(0, result.Duplicates);
        Assert.True(result.SendRetries > 0, $"expected ICMP errors to fail some sends: {result}");
        Assert.Equal(5, result.Foreign);
    }

    [KernelFact]
    public void StopIsIdempotentAndMaxDurationBoundsTheSender()
    {
        using var lab = new RouterLab(UniquePrefix());
        var udpDestination = new IPEndPoint(RouterLab.ServerAddress, UdpPort);
        WarmUpNeighbours(lab, udpDestination);

        using var udp = UdpStream.Start(lab.Client, RouterLab.ClientSourceA, lab.Server, udpDestination, 1_000,
            maxDuration: TimeSpan.FromMilliseconds(300));
        using var tcp = TcpStream.Start(lab.Client, RouterLab.ClientSourceA, lab.Server,
            new IPEndPoint(RouterLab.ServerAddress, TcpPort), 100_000, maxDuration: TimeSpan.FromMilliseconds(300));
        Thread.Sleep(800);
        Assert.True(udp.SenderStopped);
        long sentAfterMax = udp.Sent;
        Thread.Sleep(100);
        Assert.Equal(sentAfterMax, udp.Sent);

        UdpStreamResult first = udp.Stop();
        Assert.Same(first, udp.Stop());
        Assert.True(first.TimedOut);
        Assert.Equal(0, first.Lost);
        Assert.InRange(first.Sent, 200, 400);

        TcpStreamResult tcpResult = tcp.Stop();
        Assert.Same(tcpResult, tcp.Stop());
        Assert.True(tcpResult.TimedOut);
        Assert.True(tcpResult.Ok, tcpResult.ToString());
        Assert.InRange(tcpResult.BytesSent, 20_000, 40_000);
    }

    /// <summary>
    /// A few datagrams along the path, then a pause: the first packet to a neighbour not yet resolved can be
    /// dropped while ARP runs, which is no datapath loss. (Nobody listens yet; the ICMP port-unreachable
    /// replies resolve the way back too.)
    /// </summary>
    private static void WarmUpNeighbours(RouterLab lab, IPEndPoint destination)
    {
        UdpTraffic.Send(lab.Client, RouterLab.ClientSourceA, destination, 3);
        Thread.Sleep(200);
    }
}
