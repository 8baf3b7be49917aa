using System.Buffers.Binary;
using System.Net;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Kernel;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>
/// Frames the kernel would not forward as they are (VLAN-tagged, QinQ, IP lengths beyond the frame) go to the kernel
/// from the entry program, before any stage runs, counted by reason; padded frames still reach the stages.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class EntryFrameTests : IDisposable
{
    private const int TcActRedirect = 7;
    private const int TcxNext = -1;
    private const int RedirectIfindexCb = 4;
    private const ushort Dot1Q = 0x8100;
    private const ushort Dot1Ad = 0x88a8;

    // Both families have a route from the frames' sources: whatever reaches the stages is redirected.
    private const string Stages = """
              - plugin: SourcePolicy
                settings:
                  routes:
                    - from: 198.18.1.0/24
                      interface: out1
              - plugin: IPv6
                settings:
                  routes:
                    - from: 2001:db8:1::/48
                      interface: out1
        """;

    private readonly KernelChain _net = new();

    public void Dispose() => _net.Dispose();

    private static byte[] V4() => Packets.Ipv4Udp("198.18.1.10", "198.18.9.1");

    private static byte[] V6() => CanaryFrames.Ipv6Udp(IPAddress.Parse("2001:db8:1::10"), IPAddress.Parse("2001:db8:9::1"));

    // Runs each frame, which must come back untouched with TCX_NEXT, then checks the counters: all of them under
    // reason, no other reason counted, and no stage reached (so none redirected or failed to).
    private static void AssertPassedByTheEntry(LoadedChain chain, EntryCounter reason, params byte[][] frames)
    {
        foreach (var frame in frames)
        {
            var run = chain.Entry.TestRun(frame);
            Assert.Equal(TcxNext, run.ReturnValue);
            Assert.Equal(frame, run.Output);
            Assert.Equal(0u, run.Cb[RedirectIfindexCb]);
        }
        var c = chain.ReadCounters();
        Assert.Equal((ulong)frames.Length, c.Entry[EntryCounter.Packets]);
        foreach (var other in CounterLayout.PassReasons)
            Assert.True(c.Entry[other] == (other == reason ? (ulong)frames.Length : 0ul), $"{other} = {c.Entry[other]}");
        foreach (var stage in c.Stages)
            Assert.Equal((0ul, 0ul, 0ul, 0ul, 0ul), (stage[StageCounter.Packets], stage[StageCounter.Matched], stage[StageCounter.Redirected],
                stage[StageCounter.RedirectErrors], stage[StageCounter.Passed]));
    }

    [KernelFact]
    public void AFrameWithOneTagGoesToTheKernel()
    {
        using var chain = _net.Load(Stages);

        AssertPassedByTheEntry(chain, EntryCounter.PassVlan,
            Packets.Tagged(V4(), Dot1Q), Packets.Tagged(V6(), Dot1Q), Packets.Tagged(V4(), Dot1Ad), Packets.Tagged(Packets.Arp(), Dot1Q));
        Assert.Equal((0ul, 0ul), (chain.ReadCounters().Entry[EntryCounter.Ipv4], chain.ReadCounters().Entry[EntryCounter.Ipv6]));
    }

    [KernelFact]
    public void QinqGoesToTheKernelCountedApart()
    {
        using var chain = _net.Load(Stages);

        AssertPassedByTheEntry(chain, EntryCounter.PassQinq,
            Packets.Tagged(V4(), Dot1Ad, Dot1Q), Packets.Tagged(V6(), Dot1Q, Dot1Q), Packets.Tagged(V4(), Dot1Ad, Dot1Ad, Dot1Q));
    }

    [KernelFact]
    public void AnIpv4TotalLengthBeyondTheFrameGoesToTheKernel()
    {
        using var chain = _net.Load(Stages);
        var claimsMore = V4();
        var ip = claimsMore.AsSpan(Packets.EthernetLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(BinaryPrimitives.ReadUInt16BigEndian(ip[2..]) + 1));
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Packets.Ipv4HeaderChecksum(ip[..20]));
        var cutShort = V4()[..^4]; // headers intact, the payload's last bytes missing

        AssertPassedByTheEntry(chain, EntryCounter.PassLengthBeyondFrame, claimsMore, cutShort);
        Assert.Equal(2ul, chain.ReadCounters().Entry[EntryCounter.Ipv4]);
    }

    [KernelFact]
    public void AnIpv6PayloadLengthBeyondTheFrameGoesToTheKernel()
    {
        using var chain = _net.Load(Stages);
        var claimsMore = V6();
        var payloadLength = claimsMore.AsSpan(Packets.EthernetLength + 4);
        BinaryPrimitives.WriteUInt16BigEndian(payloadLength, (ushort)(BinaryPrimitives.ReadUInt16BigEndian(payloadLength) + 1));
        var cutShort = V6()[..^4];

        AssertPassedByTheEntry(chain, EntryCounter.PassLengthBeyondFrame, claimsMore, cutShort);
        Assert.Equal(2ul, chain.ReadCounters().Entry[EntryCounter.Ipv6]);
    }

    // A frame longer than its packet is normal: Ethernet pads a short packet to the 60-byte minimum (64 with the FCS).
    [KernelFact]
    public void PaddedFramesAreStillRedirected()
    {
        using var chain = _net.Load(Stages);
        var shortV4 = Packets.Ipv4Udp("198.18.1.10", "198.18.9.1", payload: 0); // 42 bytes
        var minimum = Packets.Padded(shortV4, 60 - shortV4.Length);
        var v6WithTrailer = Packets.Padded(V6(), 6);

        var v4Run = chain.Entry.TestRun(minimum);
        var v6Run = chain.Entry.TestRun(v6WithTrailer);

        Assert.Equal((TcActRedirect, (uint)_net.Ifindex(KernelChain.Out1)), (v4Run.ReturnValue, v4Run.Cb[RedirectIfindexCb]));
        Assert.Equal(60, v4Run.Output.Length);
        Assert.Equal(63, v4Run.Output[Packets.TtlOffset]);
        Assert.True(Packets.Ipv4ChecksumValid(v4Run.Output), "IPv4 checksum after TTL decrement");
        Assert.Equal((TcActRedirect, (uint)_net.Ifindex(KernelChain.Out1)), (v6Run.ReturnValue, v6Run.Cb[RedirectIfindexCb]));
        var c = chain.ReadCounters();
        Assert.All(CounterLayout.PassReasons, r => Assert.Equal(0ul, c.Entry[r]));
        Assert.Equal((1ul, 1ul), (c.Stages[0][StageCounter.Redirected], c.Stages[1][StageCounter.Redirected]));
    }

    // BPF_PROG_TEST_RUN cannot carry a tag in metadata: the kernel refuses a context whose vlan fields are set
    // (convert___skb_to_skb), and this kernel has no 802.1Q module for a VLAN device. So a first program puts the
    // tag there with bpf_skb_vlan_push (no tag yet: the helper sets skb->vlan_tci, not the frame) and tail-calls
    // the entry program, which then sees skb->vlan_present as it would after a NIC or veth stripped the tag.
    private const string Tagger = """
        // SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
        #include <linux/bpf.h>
        #include <linux/if_ether.h>
        #include <bpf/bpf_helpers.h>
        #include <bpf/bpf_endian.h>

        struct {
        	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
        	__uint(max_entries, 1);
        	__uint(key_size, sizeof(__u32));
        	__uint(value_size, sizeof(__u32));
        } entry SEC(".maps");

        SEC("tc")
        int tag_in_metadata(struct __sk_buff *skb)
        {
        	if (bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), 7) || !skb->vlan_present)
        		return 2; // TC_ACT_SHOT: the test sees it
        	bpf_tail_call(skb, &entry, 0);
        	return 2;
        }

        char LICENSE[] SEC("license") = "Dual BSD/GPL";
        """;

    [KernelFact]
    public void AFrameWithItsTagInMetadataGoesToTheKernel()
    {
        using var chain = _net.Load(Stages);
        var compiled = new ClangCompiler(Path.Combine(Path.GetTempPath(), "pluginhost-test-cache")).Compile(Tagger, "tagger");
        using var tagger = BpfObject.Open(compiled.ObjectPath);
        tagger.Load();
        using var program = tagger.Program("tag_in_metadata");
        using var entry = tagger.Map("entry");
        entry.SetProgram(0, chain.Entry);

        var (v4, v6, inner) = (V4(), V6(), Packets.Tagged(V4(), Dot1Q));
        var runs = new[] { v4, v6, inner }.Select(f => program.TestRun(f)).ToList();

        Assert.All(runs, r => Assert.Equal(TcxNext, r.ReturnValue));
        Assert.Equal([v4, v6, inner], runs.Select(r => r.Output));
        var c = chain.ReadCounters();
        Assert.Equal((3ul, 2ul, 1ul), (c.Entry[EntryCounter.Packets], c.Entry[EntryCounter.PassVlan], c.Entry[EntryCounter.PassQinq]));
        foreach (var stage in c.Stages)
            Assert.Equal((0ul, 0ul, 0ul), (stage[StageCounter.Packets], stage[StageCounter.Redirected], stage[StageCounter.RedirectErrors]));
    }
}
