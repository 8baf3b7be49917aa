using PluginHost.Compose;
using PluginHost.Observe;
using PluginHost.Datapath;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.IPv6;

/// <summary>Real IPv4 and IPv6 UDP through a dual-stack router whose lan0 ingress runs SourcePolicy and IPv6 in one pipeline.</summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class Ipv6LabTests : IDisposable
{
    private readonly RouterLab _lab = new("6" + Guid.NewGuid().ToString("N")[..4], ipv6: true);

    public void Dispose() => _lab.Dispose();

    [KernelFact]
    public void EachFamilyIsPolicyRoutedByItsOwnStage()
    {
        using var host = new LabHost(_lab, "dual", $"""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {RouterLab.ClientSourceB}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
                  - plugin: IPv6
                    settings:
                      routes:
                        - from: {RouterLab.ClientSourceB6}/128
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway6}
            """);
        Assert.Equal(ApplyKind.Attached, host.Engine.Apply().Single().Kind);

        var paths = PathProbe.Measure(_lab, [RouterLab.ClientSourceA, RouterLab.ClientSourceB, RouterLab.ClientSourceA6, RouterLab.ClientSourceB6], 500);

        // A and A6 are unmatched: the kernel's routes (uplink 1). B and B6 are policy-routed to uplink 2, each by its family's stage.
        Assert.Equal(["up1", "up2", "up1", "up2"], paths.Select(p => p.Uplink));
        Assert.All(paths, p => Assert.Equal(p.Sent, p.Received));
        var counters = host.Counters();
        Assert.True(counters.Stages[0][StageCounter.Redirected] >= 500, $"IPv4 stage redirected {counters.Stages[0][StageCounter.Redirected]}");
        Assert.True(counters.Stages[1][StageCounter.Redirected] >= 500, $"IPv6 stage redirected {counters.Stages[1][StageCounter.Redirected]}");
        Assert.True(counters.Entry[EntryCounter.PassNeighbourDiscovery] > 0, "neighbour discovery reached the kernel");
    }
}
