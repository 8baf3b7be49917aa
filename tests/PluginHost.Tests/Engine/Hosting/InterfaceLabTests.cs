using System.Diagnostics;
using System.Net;
using PluginHost.Compose;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Net;
using PluginHost.Observe;
using PluginHost.TestSupport;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Engine.Hosting;

/// <summary>
/// Interfaces come and go under a running host (the real <c>pluginhost run</c>), with traffic: an uplink deleted and
/// recreated (a new ifindex), another set down and up. While an uplink is out, its sources' packets follow the kernel's
/// route (up1), counted as target down, none lost; once it is back, its traffic returns to it with no operator action.
/// The few packets redirected to the downed uplink before the apply withdrew its route wait on its next hop's neighbour
/// entry; when it is back, the host has that entry solicit at once, so they arrive (late) and the restored route's
/// packets do not wait for the entry's retransmit timer (up to a second, which lost 0.3-0.8 s of traffic before).
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class InterfaceLabTests : IDisposable
{
    private const int Pps = 2_000;
    private const string Uplink3 = "up3";
    private static readonly IPAddress RouterUplink3Address = IPAddress.Parse("198.18.4.1");
    private static readonly IPAddress Uplink3Gateway = IPAddress.Parse("198.18.4.2");

    private readonly RouterLab _lab = new("i" + Guid.NewGuid().ToString("N")[..4]);
    private readonly ReloadRig _rig = new();
    private readonly ITestOutputHelper _out;
    private readonly HostProcesses _hosts;

    public InterfaceLabTests(ITestOutputHelper output)
    {
        _out = output;
        _hosts = new HostProcesses(output);
        // A third uplink, so that the kernel's own route (198.18.9.0/24 via up1) stays while up2 or up3 is out.
        Uplink(Uplink3, RouterUplink3Address, Uplink3Gateway);
        _rig.WriteConfig(_lab.Router.Name, RouterLab.RouterLan, $"""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
                        - from: {RouterLab.ClientSourceB}/32
                          interface: {Uplink3}
                          via: {Uplink3Gateway}
            """);
    }

    public void Dispose()
    {
        try
        {
            _hosts.Dispose();
        }
        finally
        {
            try
            {
                _rig.Dispose();
            }
            finally
            {
                _lab.Dispose();
            }
        }
    }

    // A veth between router and server, addressed on both ends (.1 router, .2 server), up (as an operator would bring one up).
    private void Uplink(string name, IPAddress router, IPAddress server)
    {
        Ip.Run("link", "add", name, "netns", _lab.Router.Name, "type", "veth", "peer", "name", name, "netns", _lab.Server.Name);
        Ip.Run("-n", _lab.Router.Name, "addr", "add", $"{router}/24", "dev", name);
        Ip.Run("-n", _lab.Server.Name, "addr", "add", $"{server}/24", "dev", name);
        Ip.Run("-n", _lab.Server.Name, "link", "set", name, "up");
        Ip.Run("-n", _lab.Router.Name, "link", "set", name, "up");
    }

    private int ServerIfindex(string name) => int.Parse(_lab.Server.Exec("cat", $"/sys/class/net/{name}/ifindex").Trim());

    [KernelFact]
    public void DeletedRecreatedAndDownedUplinksFallBackToTheKernelRouteAndReturnWithNoOperatorAction()
    {
        var host = _hosts.Start(_rig.ConfigPath);
        HostProcesses.WaitFor(() => ReloadHistory.Load(_rig.RuntimeDirectory).Reloads >= 1, "the host's first apply", TimeSpan.FromSeconds(30));
        using var a = UdpStream.Start(_lab.Client, RouterLab.ClientSourceA, _lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9300), Pps, trackInterfaces: true);
        using var b = UdpStream.Start(_lab.Client, RouterLab.ClientSourceB, _lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9301), Pps, trackInterfaces: true);
        int up1 = ServerIfindex(RouterLab.ServerUplink1), up2 = ServerIfindex(RouterLab.ServerUplink2), up3 = ServerIfindex(Uplink3);
        HostProcesses.WaitFor(() => Arrives(a, up2) && Arrives(b, up3), "both streams on their uplinks", TimeSpan.FromSeconds(5));

        // up2 deleted (both ends: a veth pair), then recreated: a new ifindex on the router.
        int routerUp2 = _lab.Router.Run(() => Interfaces.Lookup(RouterLab.RouterUplink2).Ifindex);
        Ip.Run("-n", _lab.Router.Name, "link", "del", RouterLab.RouterUplink2);
        HostProcesses.WaitFor(() => Arrives(a, up1), "source A on the kernel's route (up1)", TimeSpan.FromSeconds(2));
        Thread.Sleep(500);
        var gone = Counters();
        Uplink(RouterLab.RouterUplink2, RouterLab.RouterUplink2Address, RouterLab.Uplink2Gateway);
        long returned = Stopwatch.GetTimestamp();
        int newUp2 = ServerIfindex(RouterLab.ServerUplink2);
        HostProcesses.WaitFor(() => Arrives(a, newUp2), "source A back on the recreated up2", TimeSpan.FromSeconds(5));
        var backA = Since(a, newUp2, returned);
        Assert.NotEqual(routerUp2, _lab.Router.Run(() => Interfaces.Lookup(RouterLab.RouterUplink2).Ifindex));

        // up3 set down, then up.
        Ip.Run("-n", _lab.Router.Name, "link", "set", Uplink3, "down");
        HostProcesses.WaitFor(() => Arrives(b, up1), "source B on the kernel's route (up1)", TimeSpan.FromSeconds(2));
        Thread.Sleep(500);
        var down = StatusReport.Status(_rig.RuntimeDirectory).Single();
        returned = Stopwatch.GetTimestamp(); // before the command: the ip process's own run time counts against the host
        Ip.Run("-n", _lab.Router.Name, "link", "set", Uplink3, "up");
        HostProcesses.WaitFor(() => Arrives(b, up3), "source B back on up3", TimeSpan.FromSeconds(5));
        var backB = Since(b, up3, returned);
        Thread.Sleep(300);

        var resultA = a.Stop();
        var resultB = b.Stop();
        var counters = Counters();
        var history = ReloadHistory.Load(_rig.RuntimeDirectory);
        _out.WriteLine($"A: {resultA}; arrivals by ifindex {string.Join(", ", resultA.ArrivalsByInterface.Select(i => $"{i.Key}: {i.Value}"))}");
        _out.WriteLine($"B: {resultB}; arrivals by ifindex {string.Join(", ", resultB.ArrivalsByInterface.Select(i => $"{i.Key}: {i.Value}"))}");
        _out.WriteLine($"A back on the recreated up2 {backA.TotalMilliseconds:F0} ms after it was up; B back on up3 {backB.TotalMilliseconds:F0} ms after it was up");
        _out.WriteLine($"target down: {counters.Stages[0][StageCounter.TargetDown]} (after up2's deletion: {gone.Stages[0][StageCounter.TargetDown]}); " +
                       $"redirect errors {counters.Stages[0][StageCounter.RedirectErrors]}; applies {history.Reloads} ({history.Failures} failed)");
        _out.WriteLine($"status while up3 was down: {string.Join("; ", down.Withdrawn.Select(w => $"{w.Interface}: {w.Reason}, {w.Routes}"))}");

        Assert.Equal(0, resultA.Lost);
        Assert.Equal(0, resultB.Lost);
        Assert.True(resultA.ArrivalsByInterface.GetValueOrDefault(up1) > Pps / 4, "source A followed the kernel route while up2 was gone");
        Assert.True(resultB.ArrivalsByInterface.GetValueOrDefault(up1) > Pps / 4, "source B followed the kernel route while up3 was down");
        Assert.True(gone.Stages[0][StageCounter.TargetDown] > Pps / 4, "source A's packets counted as target down");
        Assert.True(counters.Stages[0][StageCounter.TargetDown] > gone.Stages[0][StageCounter.TargetDown] + Pps / 4, "source B's packets counted as target down");
        Assert.True(backA < TimeSpan.FromSeconds(1), $"A back after {backA.TotalMilliseconds:F0} ms");
        Assert.True(backB < TimeSpan.FromMilliseconds(250), $"B back after {backB.TotalMilliseconds:F0} ms (not held by up3's neighbour entry)");
        Assert.Equal(Uplink3, Assert.Single(down.Withdrawn).Interface);
        Assert.Empty(StatusReport.Status(_rig.RuntimeDirectory).Single().Withdrawn);
        Assert.Equal(0, history.Failures);
        HostSignals.RequestStop(host.Id);
        Assert.True(host.WaitForExit(10_000), "the host stops on SIGTERM");
    }

    private static bool Arrives(UdpStream stream, int ifindex) => stream.PathChanges is { Count: > 0 } c && c[^1].Ifindex == ifindex;

    // From the moment the uplink was back to the first datagram that arrived on it.
    private static TimeSpan Since(UdpStream stream, int ifindex, long from) =>
        Stopwatch.GetElapsedTime(from, stream.PathChanges.Last(c => c.Ifindex == ifindex).Timestamp);

    private PipelineCounters Counters() => CounterReader.ReadPinned(_rig.State);


}
