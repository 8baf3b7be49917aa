using PluginHost.Compose;
using PluginHost.Observe;
using System.Buffers.Binary;
using PluginHost.Datapath;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.SourcePolicy;

/// <summary>The composed SourcePolicy chain, loaded into the kernel and driven with BPF_PROG_TEST_RUN.</summary>
[Trait("Category", "Kernel")]
public sealed class SourcePolicyChainTests : IDisposable
{
    private const int TcActRedirect = 7;
    private const int TcxNext = -1;
    private const int RedirectIfindexCb = 4;

    private const string Stages = """
              - plugin: SourcePolicy
                settings:
                  routes:
                    - from: 198.18.1.0/24
                      interface: out1
                      via: 198.18.2.2
                    - from: 198.18.1.20/32
                      interface: out2
                      via: 198.18.3.2
        """;

    private readonly KernelChain _net = new();

    public void Dispose() => _net.Dispose();

    [KernelFact]
    public void PrefixHitRedirectsWithTtlDecrementedAndValidChecksum()
    {
        using var chain = _net.Load(Stages);
        var packet = Packets.Ipv4Udp("198.18.1.10", "198.18.9.1", ttl: 64);

        var run = chain.Entry.TestRun(packet);

        Assert.Equal(TcActRedirect, run.ReturnValue);
        Assert.Equal((uint)_net.Ifindex(KernelChain.Out1), run.Cb[RedirectIfindexCb]);
        Assert.Equal(63, run.Output[Packets.TtlOffset]);
        Assert.True(Packets.Ipv4ChecksumValid(run.Output), "IPv4 checksum after TTL decrement");
        // Everything but TTL and checksum is untouched.
        var expected = (byte[])packet.Clone();
        expected[Packets.TtlOffset] = 63;
        expected[Packets.ChecksumOffset] = run.Output[Packets.ChecksumOffset];
        expected[Packets.ChecksumOffset + 1] = run.Output[Packets.ChecksumOffset + 1];
        Assert.Equal(expected, run.Output);

        var counters = chain.ReadCounters();
        Assert.Equal(1ul, counters.Entry[EntryCounter.Packets]);
        Assert.Equal(1ul, counters.Entry[EntryCounter.Ipv4]);
        Assert.Equal(1ul, counters.Stages[0][StageCounter.Matched]);
        Assert.Equal(1ul, counters.Stages[0][StageCounter.Redirected]);
        Assert.Equal(0ul, counters.Stages[0][StageCounter.Passed]);
    }

    [KernelFact]
    public void LongerPrefixWins()
    {
        using var chain = _net.Load(Stages);

        var host = chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.20", "198.18.9.1"));
        var neighbour = chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.21", "198.18.9.1"));

        Assert.Equal(TcActRedirect, host.ReturnValue);
        Assert.Equal((uint)_net.Ifindex(KernelChain.Out2), host.Cb[RedirectIfindexCb]);
        Assert.Equal(TcActRedirect, neighbour.ReturnValue);
        Assert.Equal((uint)_net.Ifindex(KernelChain.Out1), neighbour.Cb[RedirectIfindexCb]);
    }

    [KernelFact]
    public void MissPassesToTheKernelUntouched()
    {
        using var chain = _net.Load(Stages);
        var packet = Packets.Ipv4Udp("198.18.7.1", "198.18.9.1", ttl: 64);

        var run = chain.Entry.TestRun(packet);

        Assert.Equal(TcxNext, run.ReturnValue);
        Assert.Equal(packet, run.Output);
        var stage = chain.ReadCounters().Stages[0];
        Assert.Equal(1ul, stage[StageCounter.Packets]);
        Assert.Equal(0ul, stage[StageCounter.Matched]);
        Assert.Equal(1ul, stage[StageCounter.Passed]);
    }

    // Stages count outcomes only; how many packets reached each stage is derived from them.
    [KernelFact]
    public void EachStageSeesOnlyWhatEarlierStagesHandedOn()
    {
        using var chain = _net.Load(Stages + """

                      - plugin: SourcePolicy
                        settings:
                          routes:
                            - from: 198.18.7.0/24
                              interface: out2
                              via: 198.18.3.2
                """);
        var first = Packets.Ipv4Udp("198.18.1.10", "198.18.9.1");
        var second = Packets.Ipv4Udp("198.18.7.1", "198.18.9.1");
        var neither = Packets.Ipv4Udp("198.18.8.1", "198.18.9.1");

        foreach (var (packet, times, verdict) in new[] { (first, 3, TcActRedirect), (second, 2, TcActRedirect), (neither, 1, TcxNext) })
            for (int i = 0; i < times; i++)
                Assert.Equal(verdict, chain.Entry.TestRun(packet).ReturnValue);
        Assert.Equal(TcxNext, chain.Entry.TestRun(Packets.Arp()).ReturnValue);

        var c = chain.ReadCounters();
        Assert.Equal(7ul, c.Entry[EntryCounter.Packets]);
        Assert.Equal((6ul, 3ul, 0ul, (ulong)(3 * first.Length)),
            (c.Stages[0][StageCounter.Packets], c.Stages[0][StageCounter.Redirected], c.Stages[0][StageCounter.Passed], c.Stages[0][StageCounter.RedirectedBytes]));
        Assert.Equal((3ul, 2ul, 1ul, (ulong)(2 * second.Length)),
            (c.Stages[1][StageCounter.Packets], c.Stages[1][StageCounter.Redirected], c.Stages[1][StageCounter.Passed], c.Stages[1][StageCounter.RedirectedBytes]));
        Assert.Equal(0ul, c.Stages[0][StageCounter.MissedTailCalls]);
    }

    // A redirect sends a packet to one neighbour: multicast and broadcast stay with the kernel, whatever the routes say.
    [KernelFact]
    public void MulticastAndBroadcastDestinationsAreNeverRedirected()
    {
        using var chain = _net.Load("""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 0.0.0.0/0
                          interface: out1
            """);

        foreach (var destination in new[] { "224.0.0.5", "239.1.2.3", "255.255.255.255" })
        {
            var packet = Packets.Ipv4Udp("198.18.1.10", destination);
            var run = chain.Entry.TestRun(packet);
            Assert.Equal(TcxNext, run.ReturnValue);
            Assert.Equal(packet, run.Output);
        }
        Assert.Equal(TcActRedirect, chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.10", "198.18.9.1")).ReturnValue);
        Assert.Equal((3ul, 1ul), (chain.ReadCounters().Stages[0][StageCounter.Passed], chain.ReadCounters().Stages[0][StageCounter.Redirected]));
    }

    [KernelFact]
    public void TtlOneGoesToTheKernelForTimeExceeded()
    {
        using var chain = _net.Load(Stages);
        var packet = Packets.Ipv4Udp("198.18.1.10", "198.18.9.1", ttl: 1);

        var run = chain.Entry.TestRun(packet);

        Assert.Equal(TcxNext, run.ReturnValue);
        Assert.Equal(packet, run.Output);
        var stage = chain.ReadCounters().Stages[0];
        Assert.Equal(1ul, stage[StageCounter.Matched]);
        Assert.Equal(1ul, stage[StageCounter.TtlExpired]);
        Assert.Equal(0ul, stage[StageCounter.Redirected]);
    }

    [KernelFact]
    public void EgressKeepsTtl()
    {
        using var chain = _net.Load(Stages, direction: "egress");
        var run = chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.10", "198.18.9.1", ttl: 64));

        Assert.Equal(TcActRedirect, run.ReturnValue);
        Assert.Equal(64, run.Output[Packets.TtlOffset]);
        Assert.True(Packets.Ipv4ChecksumValid(run.Output));
    }

    [KernelFact]
    public void NonIpAndTruncatedFramesPassAndAreCounted()
    {
        using var chain = _net.Load(Stages);
        var arp = Packets.Arp();
        var full = Packets.Ipv4Udp("198.18.1.10", "198.18.9.1");
        var truncated = full[..(Packets.EthernetLength + 22)]; // IP header, half a UDP header
        var badHeader = (byte[])full.Clone();
        badHeader[Packets.EthernetLength] = 0x43; // IHL 3 < 5
        var ipv6Frame = (byte[])full.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(ipv6Frame.AsSpan(12), 0x88cc); // LLDP: not IP

        Assert.Equal(TcxNext, chain.Entry.TestRun(arp).ReturnValue);
        Assert.Equal(TcxNext, chain.Entry.TestRun(truncated).ReturnValue);
        Assert.Equal(TcxNext, chain.Entry.TestRun(badHeader).ReturnValue);
        Assert.Equal(TcxNext, chain.Entry.TestRun(ipv6Frame).ReturnValue);

        var counters = chain.ReadCounters();
        Assert.Equal(4ul, counters.Entry[EntryCounter.Packets]);
        Assert.Equal(1ul, counters.Entry[EntryCounter.PassArp]);
        Assert.Equal(1ul, counters.Entry[EntryCounter.PassTruncated]);
        Assert.Equal(1ul, counters.Entry[EntryCounter.PassBadHeader]);
        Assert.Equal(1ul, counters.Entry[EntryCounter.PassNonIp]);
        Assert.Equal(0ul, counters.Stages[0][StageCounter.Packets]);
    }
}
