using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Lab;

/// <summary>Real UDP through a router namespace whose lan0 ingress runs the composed SourcePolicy chain.</summary>
[Trait("Category", "Lab")]
public sealed class SourcePolicyLabTests : IDisposable
{
    private readonly RouterLab _lab = new("l" + Guid.NewGuid().ToString("N")[..4]);
    private readonly string _work = Directory.CreateTempSubdirectory("pluginhost-lab-").FullName;
    private readonly string _bpfRoot = $"/sys/fs/bpf/pluginhost-test-{Guid.NewGuid():N}";

    public void Dispose()
    {
        BpfFs.RemoveTree(_bpfRoot);
        _lab.Dispose();
        Directory.Delete(_work, recursive: true);
    }

    private HostEngine Engine(string routes)
    {
        string path = Path.Combine(_work, "config.yaml");
        File.WriteAllText(path, $"""
            pluginsDirectory: {Repo.PluginsDirectory}
            bpfRoot: {_bpfRoot}
            runtimeDirectory: {_work}/run
            cacheDirectory: {_work}/cache
            pipelines:
              - name: lan-in
                namespace: {_lab.Router.Name}
                interface: {RouterLab.RouterLan}
                direction: ingress
                stages:
                  - plugin: SourcePolicy
                    settings:
                      routes:
            {routes}
            """);
        return new HostEngine(ConfigLoader.Load(path), NullLoggerFactory.Instance);
    }

    private static bool LinkExists(uint id)
    {
        using var bpftool = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("bpftool", $"link show id {id}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        bpftool.WaitForExit();
        return bpftool.ExitCode == 0;
    }

    [KernelFact]
    public void EachSourceLeavesByItsConfiguredUplinkAndUnmatchedFollowTheKernel()
    {
        var engine = Engine($"""
                        - from: {RouterLab.ClientSourceB}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
                        - from: {RouterLab.ClientPrimary}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
            """);
        var deployed = engine.Apply().Single();
        Assert.True(deployed.Attached);

        var paths = PathProbe.Measure(_lab, [RouterLab.ClientSourceA, RouterLab.ClientSourceB, RouterLab.ClientPrimary], 500);

        // A is unmatched: the kernel's route (uplink 1). B and the primary address are policy-routed to uplink 2.
        Assert.Equal(["up1", "up2", "up2"], paths.Select(p => p.Uplink));
        Assert.All(paths, p => Assert.Equal(p.Sent, p.Received));
        var state = PipelineState.LoadAll(Path.Combine(_work, "run")).Single();
        var counters = CounterReader.ReadPinned(state);
        Assert.True(counters.Stages[0][StageCounter.Redirected] >= 1000, $"redirected {counters.Stages[0][StageCounter.Redirected]}");
        Assert.True(counters.Stages[0][StageCounter.Passed] >= 500, $"passed {counters.Stages[0][StageCounter.Passed]}");
        Assert.Equal(0ul, counters.Entry[EntryCounter.MissedTailCalls]);
    }

    [KernelFact]
    public void ReapplyingSwapsTheProgramOnTheSameLinkAndUninstallDetaches()
    {
        var first = Engine($"""
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
            """).Apply().Single();
        Assert.Equal("up2", PathProbe.Measure(_lab, [RouterLab.ClientSourceA], 200).Single().Uplink);

        // A new configuration: the same tcx link now runs a new generation that sends A back to uplink 1.
        var engine = Engine($"""
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink1}
                          via: {RouterLab.Uplink1Gateway}
            """);
        var second = engine.Apply().Single();
        Assert.False(second.Attached);
        Assert.Equal(first.LinkId, second.LinkId);
        Assert.NotEqual(first.ProgramId, second.ProgramId);
        Assert.Equal(first.Generation + 1, second.Generation);
        Assert.False(Directory.Exists(Path.Combine(_bpfRoot, "lan-in", $"g{first.Generation}")), "old generation retired");
        Assert.Equal("up1", PathProbe.Measure(_lab, [RouterLab.ClientSourceA], 200).Single().Uplink);

        engine.Uninstall();
        Assert.False(Directory.Exists(Path.Combine(_bpfRoot, "lan-in")));
        // With its pin gone the link is released, which detaches it (bpftool 7.1 cannot list tcx itself).
        Assert.True(SpinWait.SpinUntil(() => !LinkExists(second.LinkId), TimeSpan.FromSeconds(2)), $"link {second.LinkId} still exists");
        Assert.Equal("up1", PathProbe.Measure(_lab, [RouterLab.ClientSourceA], 50).Single().Uplink);
    }
}
