using PluginHost.Compose;
using PluginHost.Observe;
using PluginHost.Datapath;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.FiveTuplePolicy;

/// <summary>Real UDP through a router whose lan0 ingress runs FiveTuplePolicy rules ahead of a SourcePolicy stage.</summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class FiveTuplePolicyLabTests : IDisposable
{
    private readonly RouterLab _lab = new("5" + Guid.NewGuid().ToString("N")[..4]);

    public void Dispose() => _lab.Dispose();

    [KernelFact]
    public void APortRuleOverridesTheSourceRouteAndOtherPortsFollowIt()
    {
        using var host = new LabHost(_lab, "rules", $"""
                  - plugin: FiveTuplePolicy
                    settings:
                      rules:
                        - name: probe-via-up2
                          protocol: udp
                          from: {RouterLab.ClientSourceB}
                          dport: {PathProbe.Port}
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {RouterLab.ClientNetwork}
                          interface: {RouterLab.RouterUplink1}
                          via: {RouterLab.Uplink1Gateway}
            """);
        Assert.Equal(ApplyKind.Attached, host.Engine.Apply().Single().Kind);

        var paths = PathProbe.Measure(_lab, [RouterLab.ClientSourceA, RouterLab.ClientSourceB], 500);

        // B's probe port matches the rule (uplink 2); A matches no rule and takes its source route (uplink 1).
        Assert.Equal(["up1", "up2"], paths.Select(p => p.Uplink));
        Assert.All(paths, p => Assert.Equal(p.Sent, p.Received));
        var counters = host.Counters();
        Assert.True(counters.Stages[0][StageCounter.Redirected] >= 500, $"rule stage redirected {counters.Stages[0][StageCounter.Redirected]}");
        Assert.True(counters.Stages[1][StageCounter.Redirected] >= 500, $"route stage redirected {counters.Stages[1][StageCounter.Redirected]}");
    }
}
