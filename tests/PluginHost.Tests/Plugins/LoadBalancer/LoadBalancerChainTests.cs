using System.Buffers.Binary;
using PluginHost.Contract;
using PluginHost.Kernel;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>LoadBalancer's hash and slot table, loaded into the kernel and driven with BPF_PROG_TEST_RUN.</summary>
[Trait("Category", "Kernel")]
public sealed class LoadBalancerChainTests : IDisposable
{
    private const int TcActRedirect = 7;
    private const int TcxNext = -1;
    private const int RedirectIfindexCb = 4;

    private readonly KernelChain _net = new();

    public void Dispose() => _net.Dispose();

    private static string Stage(string hash, int weight1, int weight2) => $"""
              - plugin: LoadBalancer
                settings:
                  services:
                    - to: 192.0.2.0/24
                      hash: {hash}
                      nexthops:
                        - interface: out1
                          via: 198.18.2.2
                          weight: {weight1}
                        - interface: out2
                          via: 198.18.3.2
                          weight: {weight2}
        """;

    private static uint Number(string address) => BinaryPrimitives.ReadUInt32BigEndian(System.Net.IPAddress.Parse(address).GetAddressBytes());

    // The ifindex in the slot a hash picks, read from the kernel's own table.
    private static int Slot(BpfMap slots, uint hash)
    {
        var value = new byte[8];
        Assert.True(slots.TryLookup(BitConverter.GetBytes(hash & 255), value));
        return BitConverter.ToInt32(value, 0);
    }

    [KernelFact]
    public void FlowsSpreadByWeightEachFlowKeepsItsPathAndCSharpPredictsIt()
    {
        using var chain = _net.Load(Stage("flow", 3, 1));
        var slots = chain.StageMaps["s0_slots"];
        int out1 = _net.Ifindex(KernelChain.Out1), out2 = _net.Ifindex(KernelChain.Out2);
        var counts = new Dictionary<int, int> { [out1] = 0, [out2] = 0 };

        for (ushort sport = 10000; sport < 12000; sport++)
        {
            var frame = Packets.Ipv4Udp("198.18.1.10", "192.0.2.80", sport: sport, dport: 53);
            var run = chain.Entry.TestRun(frame);
            Assert.Equal(TcActRedirect, run.ReturnValue);
            int ifindex = (int)run.Cb[RedirectIfindexCb];
            Assert.Equal(Slot(slots, FlowHash.Flow(Number("198.18.1.10"), Number("192.0.2.80"), 17, sport, 53)), ifindex);
            if (sport % 500 == 0)
                Assert.Equal(ifindex, (int)chain.Entry.TestRun(frame).Cb[RedirectIfindexCb]); // the same flow, the same path
            counts[ifindex]++;
        }

        // Weights 3:1 fill 192 and 64 of the 256 slots; 2,000 flows land close to that.
        double share = counts[out1] / 2000.0;
        Assert.InRange(share, 0.70, 0.80);
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
        Assert.Equal((uint)Slot(bySource.StageMaps["s0_slots"], FlowHash.Mix(Number("198.18.1.10"))), paths[0]);
    }

    [KernelFact]
    public void DestinationsOutsideEveryServiceGoOn()
    {
        using var chain = _net.Load(Stage("flow", 1, 1));

        Assert.Equal(TcxNext, chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.10", "192.0.3.1")).ReturnValue);
    }
}
