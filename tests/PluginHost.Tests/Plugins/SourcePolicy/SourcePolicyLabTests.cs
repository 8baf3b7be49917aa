using PluginHost.TestSupport;
using PluginHost.Compose;
using PluginHost.Observe;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.SourcePolicy;

/// <summary>Real UDP through a router namespace whose lan0 ingress runs the composed SourcePolicy chain.</summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
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

    private HostEngine Engine(string routes) =>
        Engine(routes, _lab.Router.Name, RouterLab.RouterLan, "ingress");

    private HostEngine Engine(string routes, string ns, string iface, string direction)
    {
        string path = Path.Combine(_work, "config.yaml");
        File.WriteAllText(path, $"""
            pluginsDirectory: {Repo.PluginsDirectory}
            bpfRoot: {_bpfRoot}
            runtimeDirectory: {_work}/run
            cacheDirectory: {_work}/cache
            pipelines:
              - name: lan-in
                namespace: {ns}
                interface: {iface}
                direction: {direction}
                stages:
                  - plugin: SourcePolicy
                    settings:
                      routes:
            {routes}
            """);
        // One host, reloaded as a running one would be: a second engine would hold fds on the link that only the
        // garbage collector closes, and the link would outlive the uninstall for as long.
        if (_engine is null)
            _engine = new HostEngine(ConfigLoader.Load(path), NullLoggerFactory.Instance, retireAfter: TimeSpan.Zero);
        else
            _engine.Reconfigure(ConfigLoader.Load(path));
        return _engine;
    }

    private HostEngine? _engine;

    // True when the kernel has the link, false when it says there is none; any other bpftool failure fails the test
    // (a broken bpftool must not read as "link gone").
    private static bool LinkExists(uint id)
    {
        using var bpftool = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("bpftool", $"link show id {id}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        string stderr = bpftool.StandardError.ReadToEnd();
        bpftool.StandardOutput.ReadToEnd();
        bpftool.WaitForExit();
        if (bpftool.ExitCode == 0)
            return true;
        Assert.Contains("No such file or directory", stderr);
        return false;
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
        Assert.Equal(0ul, counters.Stages[0][StageCounter.MissedTailCalls]);
    }

    [KernelFact]
    public void RouteChangesAreMapUpdatesCodeChangesSwapTheLinkAndUninstallDetaches()
    {
        var first = Engine($"""
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
            """).Apply().Single();
        Assert.Equal(ApplyKind.Attached, first.Kind);
        Assert.Equal("up2", PathProbe.Measure(_lab, [RouterLab.ClientSourceA], 200).Single().Uplink);

        // Only a route differs: same code, so the entry is changed in place; no new generation, same program.
        var second = Engine($"""
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink1}
                          via: {RouterLab.Uplink1Gateway}
            """).Apply().Single();
        Assert.Equal(ApplyKind.MapsUpdated, second.Kind);
        Assert.Equal(1, second.EntriesChanged);
        Assert.Equal((first.LinkId, first.ProgramId, first.Generation), (second.LinkId, second.ProgramId, second.Generation));
        Assert.Equal("up1", PathProbe.Measure(_lab, [RouterLab.ClientSourceA], 200).Single().Uplink);

        // A second stage changes the code: a new generation behind the same tcx link, the old one retired.
        var engine = Engine($"""
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
                  - plugin: SourcePolicy
            """);
        var third = engine.Apply().Single();
        Assert.Equal(ApplyKind.Swapped, third.Kind);
        Assert.Equal(first.LinkId, third.LinkId);
        Assert.NotEqual(first.ProgramId, third.ProgramId);
        Assert.Equal(first.Generation + 1, third.Generation);
        Assert.False(Directory.Exists(Path.Combine(_bpfRoot, "lan-in", $"g{first.Generation}")), "old generation retired");
        Assert.Equal("up2", PathProbe.Measure(_lab, [RouterLab.ClientSourceA], 200).Single().Uplink);

        // Unchanged configuration: nothing to do.
        Assert.Equal(ApplyKind.Unchanged, engine.Apply().Single().Kind);

        engine.Uninstall();
        Assert.False(Directory.Exists(Path.Combine(_bpfRoot, "lan-in")));
        // With its pin gone the link is released, which detaches it (bpftool 7.1 cannot list tcx itself).
        Assert.True(SpinWait.SpinUntil(() => !LinkExists(third.LinkId), TimeSpan.FromSeconds(2)), $"link {third.LinkId} still exists");
        Assert.Equal("up1", PathProbe.Measure(_lab, [RouterLab.ClientSourceA], 50).Single().Uplink);
    }

    [KernelFact]
    public void EgressPipelineSendsVipRepliesBackByTheUplinkTheyCameIn()
    {
        // The reference's asymmetric-routing case: the server answers from a virtual IP on lo, and
        // that traffic must leave by uplink 2 although the kernel's route to the client is uplink 1.
        var vip = IPAddress.Parse("198.18.9.2");
        _lab.Server.Exec("ip", "addr", "add", $"{vip}/32", "dev", "lo");
        var engine = Engine($"""
                        - from: {vip}/32
                          interface: {RouterLab.ServerUplink2}
                          via: {RouterLab.RouterUplink2Address}
            """, _lab.Server.Name, RouterLab.ServerUplink1, "egress");
        engine.Apply();

        // Let every hop learn its neighbours first: the router's plain kernel forwarding drops one
        // packet while it resolves the client's address, which is not what this test measures.
        UdpTraffic.Send(_lab.Server, vip, new IPEndPoint(RouterLab.ClientPrimary, 9002), 3);
        UdpTraffic.Send(_lab.Server, RouterLab.ServerAddress, new IPEndPoint(RouterLab.ClientPrimary, 9002), 3);
        Thread.Sleep(200);
        using var receiver = UdpReceiver.Start(_lab.Client, new IPEndPoint(RouterLab.ClientPrimary, 9001));
        long up1Before = InterfaceCounters.Read(_lab.Router, RouterLab.RouterUplink1).RxPackets;
        long up2Before = InterfaceCounters.Read(_lab.Router, RouterLab.RouterUplink2).RxPackets;
        int fromVip = UdpTraffic.Send(_lab.Server, vip, new IPEndPoint(RouterLab.ClientPrimary, 9001), 300);
        int fromServer = UdpTraffic.Send(_lab.Server, RouterLab.ServerAddress, new IPEndPoint(RouterLab.ClientPrimary, 9001), 300);
        receiver.WaitFor(fromVip + fromServer, TimeSpan.FromSeconds(3));
        long up1 = InterfaceCounters.Read(_lab.Router, RouterLab.RouterUplink1).RxPackets - up1Before;
        long up2 = InterfaceCounters.Read(_lab.Router, RouterLab.RouterUplink2).RxPackets - up2Before;
        var received = receiver.Stop();

        Assert.Equal(300, received.GetValueOrDefault(vip));
        Assert.Equal(300, received.GetValueOrDefault(RouterLab.ServerAddress));
        Assert.InRange(up2, 300, 310); // the VIP's packets, plus perhaps ARP
        Assert.InRange(up1, 300, 310); // the server address keeps the kernel's route
    }
}
