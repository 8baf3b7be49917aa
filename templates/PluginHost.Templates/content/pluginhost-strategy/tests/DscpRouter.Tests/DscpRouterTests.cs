using PluginHost.Testing;
using Xunit;

// PluginHost, and so these tests, run on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace DscpRouter.Tests;

// Needs root (or CAP_BPF and CAP_NET_ADMIN), clang-19 and libbpf1: the stage is compiled and loaded through the verifier.
public sealed class DscpRouterTests
{
    // lo is the one interface every machine has (ifindex 1); a test run never sends the packet anywhere.
    private const string Settings = """
        classes:
          - dscp: 46
            interface: lo
        """;

    [Fact]
    public void Listed_class_goes_out_of_its_interface_and_others_to_the_next_stage()
    {
        using var chain = TestChain.Load(new DscpRouter(), Settings);

        Assert.Single(chain.Canaries, c => c.Contains("class 46 out of lo"));
        var routed = chain.Run(Frame.Udp("198.18.1.10", "198.18.9.1").Dscp(46).Build()).ExpectRedirect(1);
        Assert.Equal(63, routed.Output[14 + 8]); // forwarded on ingress: TTL 64 - 1
        // The only stage hands it on, so the kernel gets it.
        chain.Run(Frame.Udp("198.18.1.10", "198.18.9.1").Dscp(10).Build()).ExpectPass();
        chain.Run(Frame.Udp("2001:db8::1", "2001:db8::2").Dscp(46).Build()).ExpectPass();

        Assert.Equal(1ul, chain.StageCounters()["redirected"]);
        var hits = Assert.Single(chain.MapEntries("hits"));
        Assert.Equal(46ul, hits.Key["index"]);
        Assert.Equal(1ul, hits.Value["packets"]);
    }

    [Fact]
    public void Unmatched_drop_drops_the_other_classes()
    {
        using var chain = TestChain.Load(new DscpRouter(), "unmatched: drop\n" + Settings);

        chain.Run(Frame.Tcp("198.18.1.10", "198.18.9.1").Dscp(0).Build()).ExpectDrop();
    }

    [Fact]
    public void A_class_out_of_range_is_refused_at_its_line()
    {
        var e = Assert.Throws<TestChainException>(() => TestChain.Load(new DscpRouter(), """
            classes:
              - dscp: 64
                interface: lo
            """));

        Assert.Contains("settings.yaml:2: ", e.Message);
        Assert.Contains("invalid DSCP class '64'", e.Message);
    }
}
