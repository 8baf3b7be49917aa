using System.Net;
using PluginHost.Lab;
using PluginHost.Net;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Health;

/// <summary>
/// The probes on the real kernel, from the lab's router namespace out of up2 to its next hop in the server namespace,
/// IPv4 and IPv6: an echo answered, a port that accepts, a port that refuses, a next hop nobody answers for, an interface
/// that does not exist.
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class ReachabilityTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(300);
    private readonly RouterLab _lab = new("r" + Guid.NewGuid().ToString("N")[..4], ipv6: true);

    public void Dispose() => _lab.Dispose();

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EchoAndConnectAnswerFromTheNextHopAndSayWhyNot(bool v6)
    {
        var gateway = v6 ? RouterLab.Uplink2Gateway6 : RouterLab.Uplink2Gateway;
        var nobody = IPAddress.Parse(v6 ? "2001:db8:3::99" : "198.18.3.99");
        string router = _lab.Router.Name;
        using var acceptor = new TcpAcceptor(_lab.Server, new IPEndPoint(gateway, 7070));

        Assert.Null(await Reachability.EchoAsync(router, RouterLab.RouterUplink2, gateway, Timeout, default));
        Assert.Null(await Reachability.ConnectAsync(router, RouterLab.RouterUplink2, gateway, 7070, Timeout, default));
        Assert.Equal("connection refused", await Reachability.ConnectAsync(router, RouterLab.RouterUplink2, gateway, 7071, Timeout, default));
        Assert.Equal("timeout after 300 ms", await Reachability.EchoAsync(router, RouterLab.RouterUplink2, nobody, Timeout, default));
        Assert.Equal("interface 'up9' does not exist", await Reachability.EchoAsync(router, "up9", gateway, Timeout, default));
    }
}
