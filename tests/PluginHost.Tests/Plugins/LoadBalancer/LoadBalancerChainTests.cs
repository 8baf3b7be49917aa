using System.Buffers.Binary;
using System.Net;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Kernel;
using PluginHost.Runtime;
using PluginHost.Tests.Support;
using PluginHost.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>LoadBalancer's hash and Maglev tables, loaded into the kernel and driven with BPF_PROG_TEST_RUN.</summary>
[Trait("Category", "Kernel")]
public sealed class LoadBalancerChainTests(ITestOutputHelper output) : IDisposable
{
    internal const int TcActRedirect = 7;
    internal const int TcxNext = -1;
    internal const int RedirectIfindexCb = 4;
    private const uint TableSize = 4093; // the default for a few backends
    private const int Flows = 100_000;

    private readonly KernelChain _net = new(KernelChain.Out3);

    public void Dispose() => _net.Dispose();

    private static string Stage(string to, string hash, params (string Interface, string Via, int Weight)[] hops) => $"""
              - plugin: LoadBalancer
                settings:
                  services:
                    - to: {to}
                      hash: {hash}
                      nexthops:
        {string.Concat(hops.Select(h => $"                - interface: {h.Interface}\n                  via: {h.Via}\n                  weight: {h.Weight}\n"))}
        """;

    private static string Stage(string hash, int weight1, int weight2) =>
        Stage("192.0.2.0/24", hash, (KernelChain.Out1, "198.18.2.2", weight1), (KernelChain.Out2, "198.18.3.2", weight2));

    /// <summary>A backend's (or, in scount, a service's) counters: element <paramref name="slot"/> of a State array.</summary>
    internal static (ulong Packets, ulong Bytes, ulong Flows) Counters(BpfMap map, uint slot)
    {
        var value = new byte[32];
        Assert.True(map.TryLookup(BitConverter.GetBytes(slot), value));
        return (BitConverter.ToUInt64(value, 0), BitConverter.ToUInt64(value, 8), BitConverter.ToUInt64(value, 16));
    }

    private static uint Number(string address) => BinaryPrimitives.ReadUInt32BigEndian(IPAddress.Parse(address).GetAddressBytes());

    // The IPv6 fold of the plugin (LoadBalancerPlugin.Fold and the template): the XOR of the address's four 32-bit words.
    private static uint Fold(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        uint folded = 0;
        for (int i = 0; i < 16; i += 4)
            folded ^= BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(i));
        return folded;
    }

    // The ifindex of the backend that entry hash % size of service 0's table names, read from the kernel's own maps (bank 0).
    private static int Backend(LoadedChain chain, uint hash)
    {
        var entry = new byte[4];
        Assert.True(chain.StageMaps["s0_ring"].TryLookup(BitConverter.GetBytes(hash % TableSize), entry));
        var backend = new byte[36]; // via6, ifindex, via4, service, slot, state
        Assert.True(chain.StageMaps["s0_backends"].TryLookup(entry, backend));
        return BitConverter.ToInt32(backend, 16);
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void RandomFlowsSpreadByWeightEachFlowKeepsItsBackendAndCSharpPredictsIt(bool v6)
    {
        var hops = v6
            ? new[] { (KernelChain.Out1, "fe80::2", 1), (KernelChain.Out2, "2001:db8:3::2", 2), (KernelChain.Out3, "fe80::4", 3) }
            : new[] { (KernelChain.Out1, "198.18.2.2", 1), (KernelChain.Out2, "198.18.3.2", 2), (KernelChain.Out3, "198.18.4.2", 3) };
        using var chain = _net.Load(Stage(v6 ? "2001:db8:9::/48" : "192.0.2.0/24", "flow", hops));
        int[] ifindexes = [_net.Ifindex(KernelChain.Out1), _net.Ifindex(KernelChain.Out2), _net.Ifindex(KernelChain.Out3)];
        var counts = ifindexes.ToDictionary(i => i, _ => 0);
        var random = new Random(v6 ? 6 : 4);
        var bytes = new byte[16];

        for (int flow = 0; flow < Flows; flow++)
        {
            byte protocol = random.Next(2) == 0 ? (byte)6 : (byte)17;
            ushort sport = (ushort)random.Next(1, 65536), dport = (ushort)random.Next(1, 65536);
            byte[] frame;
            uint hash;
            if (v6)
            {
                random.NextBytes(bytes);
                bytes[0] = 0x20; // global unicast
                var source = new IPAddress(bytes);
                random.NextBytes(bytes);
                byte[] prefix = [0x20, 0x01, 0x0d, 0xb8, 0, 0x09];
                prefix.CopyTo(bytes, 0);
                var destination = new IPAddress(bytes);
                frame = Packets.Ipv6(source, destination, protocol, sport, dport);
                hash = FlowHash.Flow(Fold(source), Fold(destination), protocol, sport, dport);
            }
            else
            {
                uint source = (uint)random.Next(0x01000000, 0x7F000000), destination = 0xC0000200 | (uint)random.Next(1, 255);
                frame = CanaryFrames.Ipv4(new IPAddress(BinaryPrimitives.ReverseEndianness(source)), new IPAddress(BinaryPrimitives.ReverseEndianness(destination)), protocol, sport, dport);
                hash = FlowHash.Flow(source, destination, protocol, sport, dport);
            }
            var run = chain.Entry.TestRun(frame);
            Assert.Equal(TcActRedirect, run.ReturnValue);
            int ifindex = (int)run.Cb[RedirectIfindexCb];
            Assert.Equal((int)chain.Entry.TestRun(frame).Cb[RedirectIfindexCb], ifindex); // the same flow, the same backend
            if (flow % 97 == 0)
                Assert.Equal(Backend(chain, hash), ifindex);
            counts[ifindex]++;
        }

        // Weights 1:2:3: each backend's share of the flows within 3 % of its weight's share (relative); the backend's
        // counters saw each of its flows once as new and both of its packets.
        for (int i = 0; i < 3; i++)
        {
            double share = counts[ifindexes[i]] / (double)Flows, expected = (i + 1) / 6.0;
            var counter = Counters(chain.StageMaps["s0_bcount"], (uint)i);
            output.WriteLine($"{(v6 ? "IPv6" : "IPv4")} backend {i + 1} (weight {i + 1}): {counts[ifindexes[i]]:N0} flows, {share:P3} (weight's share {expected:P3}); " +
                             $"counted {counter.Flows:N0} new flows, {counter.Packets:N0} packets, {counter.Bytes:N0} bytes");
            Assert.InRange(share, expected * 0.97, expected * 1.03);
            Assert.Equal(((ulong)counts[ifindexes[i]], 2ul * (ulong)counts[ifindexes[i]]), (counter.Flows, counter.Packets));
        }
    }

    [KernelFact]
    public void FragmentsFollowTheirDatagramAndSourceHashingKeepsASourceOnOnePath()
    {
        using var flow = _net.Load(Stage("flow", 1, 1));
        var first = Packets.AsFragment(Packets.Ipv4Udp("198.18.1.10", "192.0.2.80", sport: 4242, dport: 53), moreFragments: true, 0);
        var later = Packets.AsFragment(Packets.Ipv4Udp("198.18.1.10", "192.0.2.80", sport: 7, dport: 7), moreFragments: false, 128); // "ports": payload

        var a = flow.Entry.TestRun(first);
        var b = flow.Entry.TestRun(later);
        Assert.Equal((TcActRedirect, a.Cb[RedirectIfindexCb]), (b.ReturnValue, b.Cb[RedirectIfindexCb]));

        using var bySource = _net.Load(Stage("source", 1, 1));
        var paths = Enumerable.Range(20000, 200)
            .Select(port => bySource.Entry.TestRun(Packets.Ipv4Udp("198.18.1.10", "192.0.2.80", sport: (ushort)port)).Cb[RedirectIfindexCb])
            .Distinct().ToList();
        Assert.Single(paths);
        Assert.Equal((uint)Backend(bySource, FlowHash.Mix(Number("198.18.1.10"))), paths[0]);
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void WithEveryBackendDrainedPacketsGoToTheKernelCounted(bool v6)
    {
        using var chain = _net.Load(v6
            ? Stage("2001:db8:9::/48", "flow", (KernelChain.Out1, "fe80::2", 0), (KernelChain.Out2, "fe80::3", 0))
            : Stage("flow", 0, 0));

        for (ushort sport = 1000; sport < 1100; sport++)
        {
            var frame = v6
                ? CanaryFrames.Ipv6Udp(IPAddress.Parse("2001:db8:1::10"), IPAddress.Parse("2001:db8:9::80"), sport)
                : Packets.Ipv4Udp("198.18.1.10", "192.0.2.80", sport: sport);
            var run = chain.Entry.TestRun(frame);
            Assert.Equal(TcxNext, run.ReturnValue);
            Assert.Equal(0u, run.Cb[RedirectIfindexCb]);
        }
        var stage = chain.ReadCounters().Stages[0];
        Assert.Equal((100ul, 100ul, 0ul), (stage[StageCounter.Matched], stage[StageCounter.Passed], stage[StageCounter.Redirected]));
        Assert.Equal(100ul, Counters(chain.StageMaps["s0_scount"], 0).Packets); // the service's "no backend available"
        Assert.Equal((0ul, 0ul), (Counters(chain.StageMaps["s0_bcount"], 0).Packets, Counters(chain.StageMaps["s0_bcount"], 1).Packets));
    }

    // An IPv6 UDP frame as a fragment: a fragment header (id 0x1234) between the IPv6 and UDP headers; a later
    // fragment's "UDP header" is payload.
    private static byte[] Ipv6Fragment(ushort sport, ushort dport, int offsetBytes, bool moreFragments) =>
        Ipv6Fragment(IPAddress.Parse("2001:db8:1::10"), sport, dport, offsetBytes, moreFragments);

    internal static byte[] Ipv6Fragment(IPAddress source, ushort sport, ushort dport, int offsetBytes, bool moreFragments)
    {
        var whole = CanaryFrames.Ipv6Udp(source, IPAddress.Parse("2001:db8:9::80"), sport, dport);
        var frame = new byte[whole.Length + 8];
        whole.AsSpan(0, 54).CopyTo(frame);
        whole.AsSpan(54).CopyTo(frame.AsSpan(62));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14 + 4), (ushort)(BinaryPrimitives.ReadUInt16BigEndian(whole.AsSpan(14 + 4)) + 8));
        frame[14 + 6] = 44; // next header: fragment
        frame[54] = 17;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(56), (ushort)(offsetBytes | (moreFragments ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(58), 0x1234);
        return frame;
    }

    [KernelFact]
    public void Ipv6CanariesPassAndALaterFragmentFollowsItsFirst()
    {
        using var rig = new ReloadRig();
        rig.UsePlugin(Path.Combine(Repo.PluginsDirectory, "LoadBalancer"));
        rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stage("2001:db8:9::/48", "flow",
            (KernelChain.Out1, "fe80::2", 1), (KernelChain.Out2, "2001:db8:3::2", 2), (KernelChain.Out3, "fe80::4", 3)));

        // The canaries (two flows, paths predicted by the plugin's C# fold and hash) run before the generation goes live.
        var applied = rig.Engine().Apply().Single();
        Assert.Equal(ApplyKind.Attached, applied.Kind);
        Assert.True(applied.CanariesRun >= 2, $"{applied.CanariesRun} canaries run"); // the host's own and the plugin's two

        using var entry = rig.LiveEntry();
        var paths = new HashSet<uint>();
        for (ushort sport = 30000; sport < 30200; sport++)
        {
            var first = entry.TestRun(Ipv6Fragment(sport, 53, 0, moreFragments: true));
            var later = entry.TestRun(Ipv6Fragment(7, 7, 16, moreFragments: false));
            Assert.Equal((TcActRedirect, first.Cb[RedirectIfindexCb]), (later.ReturnValue, later.Cb[RedirectIfindexCb]));
            paths.Add(first.Cb[RedirectIfindexCb]);
        }
        Assert.Single(paths); // fragments hash without ports: one datagram's addresses, one backend
    }

    [KernelFact]
    public void DestinationsOutsideEveryServiceGoOn()
    {
        using var chain = _net.Load(Stage("flow", 1, 1));

        Assert.Equal(TcxNext, chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.10", "192.0.3.1")).ReturnValue);
        Assert.Equal(TcxNext, chain.Entry.TestRun(CanaryFrames.Ipv6Udp(IPAddress.Parse("2001:db8:1::10"), IPAddress.Parse("2001:db8:9::80"))).ReturnValue);
    }
}
