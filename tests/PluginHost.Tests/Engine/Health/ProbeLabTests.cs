using System.Net;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Health;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Observe;
using PluginHost.TestSupport;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Engine.Health;

/// <summary>
/// Health probes under a running host (the real <c>pluginhost run</c>): ProbedPolicy redirects the lab's traffic out of up2
/// while its ICMP and TCP probes to up2's next hop are up, and passes it to the kernel while one is down. up2's far end set
/// down gets both probes marked down within interval × failures + 1 interval (logged, in status); set up again, they are up
/// within interval × successes + 1 interval. A TCP probe to a closed port goes down with "connection refused", and the
/// datapath follows it (the link stays up: only the probe can have changed it).
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class ProbeLabTests : IDisposable
{
    private const int IntervalMs = 200, TimeoutMs = 100, Failures = 3, Successes = 2, OpenPort = 7070, ClosedPort = 7071;
    private readonly RouterLab _lab = new("h" + Guid.NewGuid().ToString("N")[..4]);
    private readonly ReloadRig _rig = new();
    private readonly ITestOutputHelper _out;
    private readonly RecordingOutput _log;
    private readonly HostProcesses _hosts;
    private readonly TcpAcceptor _acceptor;

    public ProbeLabTests(ITestOutputHelper output)
    {
        _out = output;
        _log = new RecordingOutput(output);
        _hosts = new HostProcesses(_log);
        _acceptor = new TcpAcceptor(_lab.Server, new IPEndPoint(RouterLab.Uplink2Gateway, OpenPort));
        _rig.UsePlugin(Path.Combine(Repo.Root, "artifacts", "test-plugins", "probed", "ProbedPolicy"));
        WriteConfig(OpenPort);
    }

    public void Dispose()
    {
        try
        {
            _hosts.Dispose();
            _acceptor.Dispose();
            _rig.Dispose();
        }
        finally
        {
            _lab.Dispose();
        }
    }

    private void WriteConfig(int port) => _rig.WriteConfig(_lab.Router.Name, RouterLab.RouterLan, $"""
              - plugin: ProbedPolicy
                settings:
                  interface: {RouterLab.RouterUplink2}
                  via: {RouterLab.Uplink2Gateway}
                  port: {port}
                  intervalMs: {IntervalMs}
                  timeoutMs: {TimeoutMs}
                  failures: {Failures}
                  successes: {Successes}
        """);

    [KernelFact]
    public void ALinkDownIsDetectedWithinItsBoundTheDatapathFollowsAndItComesBack()
    {
        _hosts.Start(_rig.ConfigPath);
        HostProcesses.WaitFor(() => ReloadHistory.Load(_rig.RuntimeDirectory).Reloads >= 1, "the host's first apply", TimeSpan.FromSeconds(30));
        HostProcesses.WaitFor(() => States() is [ProbeState.Up, ProbeState.Up], "both probes up", TimeSpan.FromSeconds(5));
        Assert.True(Sends() is (50, 0), "redirected while the probes are up");

        // The far end of up2 down: the probes' packets go nowhere.
        var down = DateTimeOffset.UtcNow;
        Ip.Run("-n", _lab.Server.Name, "link", "set", RouterLab.ServerUplink2, "down");
        HostProcesses.WaitFor(() => States() is [ProbeState.Down, ProbeState.Down], "both probes down", TimeSpan.FromSeconds(5));
        var whileDown = Probes();
        var statusDown = StatusReport.Status(_rig.RuntimeDirectory).Single();
        var detected = whileDown.Max(p => p.Since) - down;

        var up = DateTimeOffset.UtcNow;
        Ip.Run("-n", _lab.Server.Name, "link", "set", RouterLab.ServerUplink2, "up");
        HostProcesses.WaitFor(() => States() is [ProbeState.Up, ProbeState.Up], "both probes up again", TimeSpan.FromSeconds(5));
        var recovered = Probes().Max(p => p.Since) - up;
        HostProcesses.WaitFor(() => Sends() is (50, _), "traffic redirected again", TimeSpan.FromSeconds(3));

        // A closed port: only the TCP probe goes down (up2 stays up), and with it the redirect.
        WriteConfig(ClosedPort);
        HostProcesses.WaitFor(() => States() is [ProbeState.Up, ProbeState.Down], "the TCP probe down", TimeSpan.FromSeconds(5));
        var refused = Probes().Single(p => p.Probe == "tcp");
        HostProcesses.WaitFor(() => Sends() is (0, 50), "traffic passed to the kernel", TimeSpan.FromSeconds(3));

        _out.WriteLine($"link down → both probes down after {detected.TotalMilliseconds:F0} ms (bound {(Failures + 1) * IntervalMs} ms); " +
                       $"link up → up after {recovered.TotalMilliseconds:F0} ms (bound {(Successes + 1) * IntervalMs} ms)");
        _out.WriteLine($"status while down: {string.Join("; ", statusDown.Probes.Select(p => $"{p.Probe} {p.State} since {p.Since:HH:mm:ss.fff}: {p.LastError}"))}");
        _out.WriteLine($"closed port: {refused.State}: {refused.LastError}");

        Assert.True(detected <= TimeSpan.FromMilliseconds((Failures + 1) * IntervalMs), $"down after {detected.TotalMilliseconds:F0} ms");
        Assert.True(recovered <= TimeSpan.FromMilliseconds((Successes + 1) * IntervalMs), $"up after {recovered.TotalMilliseconds:F0} ms");
        Assert.All(statusDown.Probes, p => Assert.Equal(ProbeState.Down, p.State));
        Assert.Equal($"timeout after {TimeoutMs} ms", statusDown.Probes.Single(p => p.Probe == "icmp").LastError);
        Assert.Equal("connection refused", refused.LastError);
        Assert.Contains(_log.Lines, l => l.Contains("probe icmp (icmp 198.18.3.2 via up2) is down after 3 failures in a row: timeout after 100 ms"));
        Assert.Contains(_log.Lines, l => l.Contains("probe tcp (tcp 198.18.3.2:7071 via up2) is down after 3 failures in a row: connection refused"));
        Assert.Contains(_log.Lines, l => l.Contains("probe icmp (icmp 198.18.3.2 via up2) is up after 2 successes in a row (down for"));
    }

    private IReadOnlyList<ProbeStatus> Probes() => ProbeFile.Load(_rig.RuntimeDirectory).GetValueOrDefault("p") ?? [];

    // icmp, then tcp.
    private ProbeState[] States() => Probes().OrderBy(p => p.Probe, StringComparer.Ordinal).Select(p => p.State).ToArray();

    // 50 datagrams from the client through the router: how many stage 0 redirected and passed, and that they arrived where
    // that sends them: redirected out of up2, passed by the kernel's route, up1 (the interfaces also see a few probe packets
    // and ARP, never 50).
    private (long Redirected, long Passed) Sends()
    {
        var before = Counters();
        long up1 = Arrived(RouterLab.ServerUplink1), up2 = Arrived(RouterLab.ServerUplink2);
        UdpTraffic.Send(_lab.Client, RouterLab.ClientSourceA, new IPEndPoint(RouterLab.ServerAddress, 9000), 50);
        Thread.Sleep(100);
        var after = Counters();
        up1 = Arrived(RouterLab.ServerUplink1) - up1;
        up2 = Arrived(RouterLab.ServerUplink2) - up2;
        long redirected = (long)(after[StageCounter.Redirected] - before[StageCounter.Redirected]);
        long passed = (long)(after[StageCounter.Passed] - before[StageCounter.Passed]);
        if (redirected == 50)
            Assert.True(up2 >= 50 && up1 < 50, $"redirected datagrams arrived on up2 {up2}, up1 {up1}");
        if (passed == 50)
            Assert.True(up1 >= 50 && up2 < 50, $"passed datagrams arrived on up1 {up1}, up2 {up2}");
        return (redirected, passed);
    }

    private long Arrived(string serverInterface) => InterfaceCounters.Read(_lab.Server, serverInterface).RxPackets;

    private StageCounters Counters() => CounterReader.ReadPinned(_rig.State).Stages[0];
}
