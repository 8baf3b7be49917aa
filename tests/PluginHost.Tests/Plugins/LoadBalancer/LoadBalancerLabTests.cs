using PluginHost.Compose;
using PluginHost.Observe;
using System.Buffers.Binary;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Kernel;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>Real UDP through a router whose lan0 ingress spreads the server's prefix over both uplinks.</summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class LoadBalancerLabTests : IDisposable
{
    private readonly RouterLab _lab = new("b" + Guid.NewGuid().ToString("N")[..4]);

    public void Dispose() => _lab.Dispose();

    [KernelFact]
    public void EachSourceTakesTheUplinkItsHashPicks()
    {
        using var host = new LabHost(_lab, "lb", $"""
                  - plugin: LoadBalancer
                    settings:
                      services:
                        - to: {RouterLab.ServerNetwork}
                          hash: source
                          nexthops:
                            - interface: {RouterLab.RouterUplink1}
                              via: {RouterLab.Uplink1Gateway}
                            - interface: {RouterLab.RouterUplink2}
                              via: {RouterLab.Uplink2Gateway}
            """);
        Assert.Equal(ApplyKind.Attached, host.Engine.Apply().Single().Kind);
        var sources = new[] { RouterLab.ClientPrimary, RouterLab.ClientSourceA, RouterLab.ClientSourceB };

        var paths = PathProbe.Measure(_lab, sources, 300);

        // Where each source should go: its hash's entry in the Maglev table the host wrote (bank 0, 4,093 entries), then that backend.
        var state = PipelineState.Load(host.RuntimeDirectory, "lb")!;
        using var ring = BpfMap.OpenPinned(state.Maps.Single(m => m.CName == "s0_ring").Pin);
        using var backends = BpfMap.OpenPinned(state.Maps.Single(m => m.CName == "s0_backends").Pin);
        int uplink2 = int.Parse(_lab.Router.Exec("cat", $"/sys/class/net/{RouterLab.RouterUplink2}/ifindex").Trim());
        var expected = sources.Select(s =>
        {
            var entry = new byte[4];
            var backend = new byte[36]; // via6, ifindex, via4, service, slot, state
            uint hash = FlowHash.Mix(BinaryPrimitives.ReadUInt32BigEndian(s.GetAddressBytes()));
            Assert.True(ring.TryLookup(BitConverter.GetBytes(hash % 4093), entry));
            Assert.True(backends.TryLookup(entry, backend));
            return BitConverter.ToInt32(backend, 16) == uplink2 ? "up2" : "up1";
        }).ToList();
        Assert.Equal(expected, paths.Select(p => p.Uplink));
        Assert.All(paths, p => Assert.Equal(p.Sent, p.Received));
        Assert.True(host.Counters().Stages[0][StageCounter.Redirected] >= 900, "the stage forwarded every probe");
    }
}
