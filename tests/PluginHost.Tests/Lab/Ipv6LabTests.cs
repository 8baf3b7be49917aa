using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Lab;

/// <summary>Real IPv4 and IPv6 UDP through a dual-stack router whose lan0 ingress runs SourcePolicy and IPv6 in one pipeline.</summary>
[Trait("Category", "Lab")]
public sealed class Ipv6LabTests : IDisposable
{
    private readonly RouterLab _lab = new("6" + Guid.NewGuid().ToString("N")[..4], ipv6: true);
    private readonly string _work = Directory.CreateTempSubdirectory("pluginhost-lab-").FullName;
    private readonly string _bpfRoot = $"/sys/fs/bpf/pluginhost-test-{Guid.NewGuid():N}";

    public void Dispose()
    {
        BpfFs.RemoveTree(_bpfRoot);
        _lab.Dispose();
        Directory.Delete(_work, recursive: true);
    }

    [KernelFact]
    public void EachFamilyIsPolicyRoutedByItsOwnStage()
    {
        string path = Path.Combine(_work, "config.yaml");
        File.WriteAllText(path, $"""
            pluginsDirectory: {Repo.PluginsDirectory}
            bpfRoot: {_bpfRoot}
            runtimeDirectory: {_work}/run
            cacheDirectory: {_work}/cache
            pipelines:
              - name: dual
                namespace: {_lab.Router.Name}
                interface: {RouterLab.RouterLan}
                direction: ingress
                stages:
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
        var engine = new HostEngine(ConfigLoader.Load(path), NullLoggerFactory.Instance, retireAfter: TimeSpan.Zero);
        try
        {
            Assert.Equal(ApplyKind.Attached, engine.Apply().Single().Kind);

            var paths = PathProbe.Measure(_lab, [RouterLab.ClientSourceA, RouterLab.ClientSourceB, RouterLab.ClientSourceA6, RouterLab.ClientSourceB6], 500);

            // A and A6 are unmatched: the kernel's routes (uplink 1). B and B6 are policy-routed to uplink 2, each by its family's stage.
            Assert.Equal(["up1", "up2", "up1", "up2"], paths.Select(p => p.Uplink));
            Assert.All(paths, p => Assert.Equal(p.Sent, p.Received));
            var counters = CounterReader.ReadPinned(PipelineState.Load(Path.Combine(_work, "run"), "dual")!);
            Assert.True(counters.Stages[0][StageCounter.Redirected] >= 500, $"IPv4 stage redirected {counters.Stages[0][StageCounter.Redirected]}");
            Assert.True(counters.Stages[1][StageCounter.Redirected] >= 500, $"IPv6 stage redirected {counters.Stages[1][StageCounter.Redirected]}");
            Assert.True(counters.Entry[EntryCounter.PassNeighbourDiscovery] > 0, "neighbour discovery reached the kernel");
        }
        finally
        {
            engine.Uninstall();
        }
    }
}
