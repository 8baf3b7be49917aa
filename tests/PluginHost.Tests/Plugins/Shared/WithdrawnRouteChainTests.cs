using System.Net;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.Shared;

/// <summary>
/// Routes whose interface is missing or down are withdrawn, not refused: planned with ifindex 0, which the redirect helpers
/// pass to the kernel (TCX_NEXT) and count as TargetDown; and a next hop off the interface's subnets is refused, located.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class WithdrawnRouteChainTests : IDisposable
{
    private const int TcActRedirect = 7;
    private const int TcxNext = -1;

    private readonly KernelChain _net = new();

    public void Dispose() => _net.Dispose();

    private const string SourceRoutes = """
              - plugin: SourcePolicy
                settings:
                  routes:
                    - from: 198.18.1.0/24
                      interface: out1
                    - from: 198.18.1.20/32
                      interface: gone9
                    - from: 198.18.1.30/32
                      interface: out2
        """;

    [KernelFact]
    public void MissingAndDownInterfacesWithdrawTheirRoutesWhichPassAndCountTargetDown()
    {
        _net.Namespace.Exec("ip", "link", "set", KernelChain.Out2, "down");

        var planned = _net.Plan(SourceRoutes);
        using var chain = _net.Load(SourceRoutes);
        var live = chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.10", "198.18.9.1"));
        var gone = chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.20", "198.18.9.1"));
        var packet = Packets.Ipv4Udp("198.18.1.30", "198.18.9.1", ttl: 64);
        var down = chain.Entry.TestRun(packet);

        Assert.Equal(TcActRedirect, live.ReturnValue);
        Assert.Equal(TcxNext, gone.ReturnValue); // not the covering /24: the kernel routes it
        Assert.Equal(TcxNext, down.ReturnValue);
        Assert.Equal(packet, down.Output);       // untouched: TTL too (the kernel decrements it when it forwards)
        var stage = chain.ReadCounters().Stages[0];
        Assert.Equal((2ul, 2ul, 1ul, 3ul, 0ul), (stage[StageCounter.TargetDown], stage[StageCounter.Passed], stage[StageCounter.Redirected],
            stage[StageCounter.Matched], stage[StageCounter.RedirectErrors]));

        Assert.Equal([("gone9", 1), ("out2", 1)], planned.Withdrawn.OrderBy(w => w.Interface).Select(w => (w.Interface, w.Routes)));
        Assert.Contains("does not exist", planned.Withdrawn.Single(w => w.Interface == "gone9").Reason);
        Assert.Contains("is down", planned.Withdrawn.Single(w => w.Interface == "out2").Reason);
        var warning = planned.Warnings.Single(w => w.FieldPath.EndsWith("routes[1].interface"));
        Assert.Contains("interface 'gone9' does not exist", warning.Message);
        Assert.Contains("1 route withdrawn", warning.Message);
        Assert.Equal(0, planned.Interfaces["gone9"]);
        Assert.Equal(_net.Ifindex(KernelChain.Out2), planned.Interfaces["out2"]); // known, to follow its events
    }

    [KernelFact]
    public void Ipv6RouteToAMissingInterfacePassesAndCountsTargetDown()
    {
        const string stages = """
                  - plugin: IPv6
                    settings:
                      routes:
                        - from: 2001:db8:1::/48
                          interface: gone9
                          via: fe80::2
            """;
        using var chain = _net.Load(stages);
        var run = chain.Entry.TestRun(CanaryFrames.Ipv6Udp(IPAddress.Parse("2001:db8:1::10"), IPAddress.Parse("2001:db8:9::1")));

        Assert.Equal(TcxNext, run.ReturnValue);
        Assert.Equal(1ul, chain.ReadCounters().Stages[0][StageCounter.TargetDown]);
    }

    [KernelFact]
    public void LoadBalancerSharesAWithdrawnNextHopsSlotsAmongTheOthers()
    {
        const string stages = """
                  - plugin: LoadBalancer
                    settings:
                      services:
                        - to: 198.18.9.0/24
                          nexthops:
                            - interface: out1
                            - interface: gone9
            """;
        using var chain = _net.Load(stages);
        int out1 = _net.Ifindex(KernelChain.Out1);
        for (ushort sport = 40000; sport < 40064; sport++)
        {
            var run = chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.10", "198.18.9.1", sport: sport));
            Assert.Equal(TcActRedirect, run.ReturnValue);
            Assert.Equal((uint)out1, run.Cb[4]);
        }
        Assert.Equal(0ul, chain.ReadCounters().Stages[0][StageCounter.TargetDown]);
    }

    [KernelFact]
    public void NextHopOffTheInterfacesSubnetsIsRefusedAtItsField()
    {
        _net.Namespace.Exec("ip", "addr", "add", "198.18.2.1/24", "dev", KernelChain.Out1);
        _net.Namespace.Exec("ip", "route", "add", "198.18.7.0/24", "dev", KernelChain.Out1);
        string stages(string via) => $"""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: out1
                          via: {via}
            """;

        Assert.Single(_net.Plan(stages("198.18.2.2")).Plan.Stages);
        Assert.Single(_net.Plan(stages("198.18.7.5")).Plan.Stages); // covered by a route out of out1 with no gateway
        var refused = Assert.Throws<ConfigException>(() => _net.Plan(stages("198.18.3.9")));
        var error = Assert.Single(refused.Errors);
        Assert.Equal("pipelines[0].stages[0].settings.routes[0].via", error.FieldPath);
        Assert.Equal("next hop 198.18.3.9 is not on-link for out1 (its subnets: 198.18.2.0/24, 198.18.7.0/24)", error.Message);
        Assert.True(error.Line > 0);
    }
}
