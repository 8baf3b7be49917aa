using PluginHost.Compose;
using PluginHost.Observe;
using System.Net;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.IPv6;

/// <summary>The IPv6 plugin's chain, loaded into the kernel and driven with BPF_PROG_TEST_RUN.</summary>
[Trait("Category", "Kernel")]
public sealed class Ipv6ChainTests : IDisposable
{
    private const int TcActRedirect = 7;
    private const int TcxNext = -1;
    private const int RedirectIfindexCb = 4;
    private const int HopLimitOffset = 14 + 7;

    private const string Stages = """
              - plugin: IPv6
                settings:
                  routes:
                    - from: 2001:db8:1::/48
                      interface: out1
                      via: fe80::2
                    - from: 2001:db8:1:5::/64
                      interface: out2
        """;

    private readonly KernelChain _net = new();

    public void Dispose() => _net.Dispose();

    private static byte[] Frame(string source, string destination = "2001:db8:9::1", byte hopLimit = 64) =>
        CanaryFrames.Ipv6Udp(IPAddress.Parse(source), IPAddress.Parse(destination), hopLimit: hopLimit);

    [KernelFact]
    public void PrefixHitRedirectsWithHopLimitDecrementedAndNothingElseChanged()
    {
        using var chain = _net.Load(Stages);
        var packet = Frame("2001:db8:1:2::10");

        var run = chain.Entry.TestRun(packet);

        Assert.Equal(TcActRedirect, run.ReturnValue);
        Assert.Equal((uint)_net.Ifindex(KernelChain.Out1), run.Cb[RedirectIfindexCb]);
        var expected = (byte[])packet.Clone();
        expected[HopLimitOffset] = 63;
        Assert.Equal(expected, run.Output);
        var stage = chain.ReadCounters().Stages[0];
        Assert.Equal((1ul, 1ul, 1ul), (stage[StageCounter.Packets], stage[StageCounter.Matched], stage[StageCounter.Redirected]));
    }

    [KernelFact]
    public void LongerPrefixWinsAndAMissPassesUntouched()
    {
        using var chain = _net.Load(Stages);
        var inner = chain.Entry.TestRun(Frame("2001:db8:1:5::7"));
        var miss = Frame("2001:db8:2::7");
        var missRun = chain.Entry.TestRun(miss);

        Assert.Equal(TcActRedirect, inner.ReturnValue);
        Assert.Equal((uint)_net.Ifindex(KernelChain.Out2), inner.Cb[RedirectIfindexCb]);
        Assert.Equal(TcxNext, missRun.ReturnValue);
        Assert.Equal(miss, missRun.Output);
    }

    [KernelFact]
    public void HopLimitOneScopedAddressesAndIpv4GoToTheKernel()
    {
        using var chain = _net.Load(Stages);
        var expiring = Frame("2001:db8:1::1", hopLimit: 1);
        var toMulticast = Frame("2001:db8:1::1", destination: "ff02::1");
        var toLinkLocal = Frame("2001:db8:1::1", destination: "fe80::1");
        var ipv4 = Packets.Ipv4Udp("198.18.1.10", "198.18.9.1");

        foreach (var frame in new[] { expiring, toMulticast, toLinkLocal, ipv4 })
        {
            var run = chain.Entry.TestRun(frame);
            Assert.Equal(TcxNext, run.ReturnValue);
            Assert.Equal(frame, run.Output);
        }
        var stage = chain.ReadCounters().Stages[0];
        Assert.Equal((1ul, 1ul, 0ul, 4ul), (stage[StageCounter.Matched], stage[StageCounter.TtlExpired], stage[StageCounter.Redirected], stage[StageCounter.Passed]));
    }

    [KernelFact]
    public void EgressKeepsTheHopLimit()
    {
        using var chain = _net.Load(Stages, direction: "egress");

        var run = chain.Entry.TestRun(Frame("2001:db8:1::1", hopLimit: 1));

        Assert.Equal(TcActRedirect, run.ReturnValue);
        Assert.Equal(1, run.Output[HopLimitOffset]);
    }

    // Both families in one pipeline: each plugin hands the other's packets on.
    [KernelFact]
    public void SourcePolicyAndIpv6ShareAPipeline()
    {
        using var chain = _net.Load("""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: out2
            """ + "\n" + Stages);

        var v4 = chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.10", "198.18.9.1"));
        var v6 = chain.Entry.TestRun(Frame("2001:db8:1::1"));

        Assert.Equal((TcActRedirect, (uint)_net.Ifindex(KernelChain.Out2)), (v4.ReturnValue, v4.Cb[RedirectIfindexCb]));
        Assert.Equal((TcActRedirect, (uint)_net.Ifindex(KernelChain.Out1)), (v6.ReturnValue, v6.Cb[RedirectIfindexCb]));
        var c = chain.ReadCounters();
        Assert.Equal((2ul, 1ul), (c.Stages[0][StageCounter.Packets], c.Stages[0][StageCounter.Redirected]));
        Assert.Equal((1ul, 1ul), (c.Stages[1][StageCounter.Packets], c.Stages[1][StageCounter.Redirected]));
    }

    [KernelFact]
    public void ARoutesFileOfTenThousandPrefixesRoutesByLongestMatch()
    {
        string file = Path.Combine(Path.GetTempPath(), $"pluginhost-routes6-{Guid.NewGuid():N}.txt");
        try
        {
            using (var w = new StreamWriter(file))
                for (int i = 0; i < 10_000; i++)
                    w.WriteLine($"2001:db8:{i:x}::/48 {(i % 2 == 0 ? "out1" : "out2")}");
            using var chain = _net.Load($"""
                      - plugin: IPv6
                        settings:
                          routesFile: {file}
                """);

            var even = chain.Entry.TestRun(Frame("2001:db8:2a::1"));
            var odd = chain.Entry.TestRun(Frame("2001:db8:2b::1"));
            var outside = chain.Entry.TestRun(Frame("2001:db9::1"));

            Assert.Equal((TcActRedirect, (uint)_net.Ifindex(KernelChain.Out1)), (even.ReturnValue, even.Cb[RedirectIfindexCb]));
            Assert.Equal((TcActRedirect, (uint)_net.Ifindex(KernelChain.Out2)), (odd.ReturnValue, odd.Cb[RedirectIfindexCb]));
            Assert.Equal(TcxNext, outside.ReturnValue);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
