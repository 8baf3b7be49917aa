using System.Diagnostics;
using System.Net;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Lab;
using PluginHost.Net;
using PluginHost.Observe;
using PluginHost.Tests.Support;
using PluginHost.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Engine.Hosting;

/// <summary>
/// The real `pluginhost run`, killed with SIGKILL at each named step of an apply (<see cref="FaultPoints"/>) under a
/// sequence-numbered stream, then restarted with the new configuration or the old one. Every restart must converge
/// on exactly one attached generation, the one the state and `status` name, with nothing orphaned, and no datagram
/// may be lost or leave by the wrong uplink at any time.
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class CrashLabTests : IDisposable
{
    private const int Pps = 20_000;
    private readonly RouterLab _lab = new("k" + Guid.NewGuid().ToString("N")[..4]);
    private readonly ReloadRig _rig = new();
    private readonly ITestOutputHelper _out;
    private readonly HostProcesses _hosts;

    public CrashLabTests(ITestOutputHelper output)
    {
        _out = output;
        _hosts = new HostProcesses(output);
        _rig.UsePlugin(Repo.MarkPolicy(1));
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

    // Two configurations with different code that send client source A out of uplink 2; the kernel's own route (the
    // wrong path) is uplink 1. With MarkPolicy in front, SourcePolicy runs behind a tail call: a prog array emptied
    // by a crash would send the stream out of uplink 1.
    private void WriteConfig(bool withMarkPolicy) =>
        _rig.WriteConfig(_lab.Router.Name, RouterLab.RouterLan, (withMarkPolicy ? "      - plugin: MarkPolicy\n" : "") + $"""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
            """);



    private long WrongPathPackets() => InterfaceCounters.Read(_lab.Server, RouterLab.ServerUplink1).RxPackets;

    // Exactly one generation pinned, the one the state names, attached, with its maps and nothing else.
    private string? Converged()
    {
        var state = _rig.State;
        var status = StatusReport.Status(_rig.RuntimeDirectory).Single();
        if (status.Problem is not null)
            return $"status: {status.Problem}";
        using (var entry = BpfProgram.OpenPinned(state.EntryPin))
            if (entry.Id != _rig.AttachedProgramId())
                return $"the link runs program {_rig.AttachedProgramId()}, generation {state.Generation} is program {entry.Id}";
        var generations = Directory.GetDirectories(Path.Combine(_rig.BpfRoot, "p"), "g*").Select(Path.GetFileName).ToList();
        if (generations.Count != 1 || generations[0] != $"g{state.Generation}")
            return $"generations pinned: {string.Join(", ", generations)} (state: g{state.Generation})";
        var maps = Directory.GetFiles(Path.Combine(_rig.BpfRoot, "p", "maps")).Order().ToList();
        var used = state.Maps.Select(m => m.Pin).Order().ToList();
        if (!maps.SequenceEqual(used))
            return $"maps pinned: {string.Join(", ", maps.Select(Path.GetFileName))}; used: {string.Join(", ", used.Select(Path.GetFileName))}";
        return null;
    }

    [KernelFact]
    public void AHostKilledAtEveryStepOfAnApplyRestartsOnOneGenerationAndCostsNoTraffic()
    {
        bool withMark = false;
        WriteConfig(withMark);
        var warm = _rig.Engine();
        warm.Apply();
        UdpTraffic.Send(_lab.Client, RouterLab.ClientSourceA, new IPEndPoint(RouterLab.ServerAddress, 9999), 3); // neighbours
        Thread.Sleep(200);
        warm.ReleasePlugins();

        using var udp = UdpStream.Start(_lab.Client, RouterLab.ClientSourceA, _lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9100), Pps,
            maxDuration: TimeSpan.FromMinutes(5));
        Thread.Sleep(300);
        long wrongBefore = WrongPathPackets();
        var cycles = new List<string>();

        foreach (string point in FaultPoints.All)
            foreach (bool restartWithNew in new[] { true, false })
            {
                // The host applies the other configuration (new code) and dies at the point.
                bool old = withMark;
                WriteConfig(!old);
                var doomed = _hosts.Start(_rig.ConfigPath, point);
                Assert.True(doomed.WaitForExit(30_000), $"the host reaches fault point {point}");
                Assert.Equal(137, doomed.ExitCode); // SIGKILL

                // Restarted with the new configuration, or with the old one again.
                withMark = restartWithNew ? !old : old;
                WriteConfig(withMark);
                var before = ReloadHistory.Load(_rig.RuntimeDirectory);
                var host = _hosts.Start(_rig.ConfigPath);
                HostProcesses.WaitFor(() => ReloadHistory.Load(_rig.RuntimeDirectory).Reloads > before.Reloads, $"the restarted host's first apply after {point}");
                Assert.Equal(before.Failures, ReloadHistory.Load(_rig.RuntimeDirectory).Failures); // its first apply succeeded
                string? problem = "not checked";
                SpinWait.SpinUntil(() => (problem = Converged()) is null, TimeSpan.FromSeconds(10)); // the grace period, then the idle retire
                Assert.True(problem is null, $"after {point}, restarted with the {(restartWithNew ? "new" : "old")} configuration: {problem}");
                Assert.Equal(withMark ? 2 : 1, _rig.State.Stages.Count);
                cycles.Add($"{point}/{(restartWithNew ? "new" : "old")}: generation {_rig.State.Generation}");

                HostSignals.RequestStop(host.Id);
                Assert.True(host.WaitForExit(10_000), "the host stops on SIGTERM");
            }

        Thread.Sleep(300);
        var result = udp.Stop();
        long wrong = WrongPathPackets() - wrongBefore;
        _out.WriteLine(string.Join("\n", cycles));
        _out.WriteLine($"udp: {result}; packets on the wrong uplink: {wrong}");

        Assert.Equal(0, result.Lost);
        Assert.True(result.Sent > Pps * 10, $"the stream ran through every cycle ({result.Sent} sent)");
        // The server's wrong uplink sees no datagram of the stream; a handful of ARP frames at most.
        Assert.True(wrong <= 4, $"{wrong} packets arrived on the wrong uplink");
    }

    [KernelTheory]
    [InlineData("exitWhile", "Configure")]                                         // Environment.Exit in Configure
    [InlineData("throwOnThreadWhile", "own thread (InvalidOperationException)")]   // an exception on the plugin's own thread
    public void APluginThatEndsTheProcessKillsTheHostOnceThenIsQuarantinedWhileTrafficFlows(string setting, string call)
    {
        string marker = Path.Combine(_rig.Work, "exit");
        // MarkPolicy (ends the process in Configure while the marker exists) in front of SourcePolicy: source A to up2.
        _rig.WriteConfig(_lab.Router.Name, RouterLab.RouterLan, $"""
                  - plugin: MarkPolicy
                    settings: {"{"} {setting}: {marker} {"}"}
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
            """);
        var host = _hosts.Start(_rig.ConfigPath);
        HostProcesses.WaitFor(() => ReloadHistory.Load(_rig.RuntimeDirectory).Reloads >= 1, "the host's first apply");
        UdpTraffic.Send(_lab.Client, RouterLab.ClientSourceA, new IPEndPoint(RouterLab.ServerAddress, 9999), 3); // neighbours
        Thread.Sleep(200);
        using var udp = UdpStream.Start(_lab.Client, RouterLab.ClientSourceA, _lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9100), Pps);
        Thread.Sleep(300);
        long wrongBefore = WrongPathPackets();
        uint program = _rig.AttachedProgramId();

        File.WriteAllText(marker, "end the process in Configure");
        HostSignals.Reload(host.Id); // SIGHUP: re-read and apply, which calls MarkPolicy.Configure
        Assert.True(host.WaitForExit(30_000), "the plugin ends the host");
        Assert.NotEqual(0, host.ExitCode);

        var restarted = _hosts.Start(_rig.ConfigPath); // as systemd would; the marker is still there: a crash loop without quarantine
        HostProcesses.WaitFor(() => File.Exists(PidFile(_rig.RuntimeDirectory)), "the restarted host up");
        Thread.Sleep(1500);
        Assert.False(restarted.HasExited, "the restarted host stays up");
        var quarantined = PluginHost.Plugins.PluginCalls.Read(PluginHost.Plugins.PluginCalls.QuarantineFileIn(_rig.RuntimeDirectory));
        Assert.Equal(("MarkPolicy", call), (Assert.Single(quarantined).Plugin, quarantined[0].Call));
        Assert.Contains("quarantined", ReloadHistory.Load(_rig.RuntimeDirectory).LastFailure);
        Assert.Equal(program, _rig.AttachedProgramId()); // the running generation kept

        Thread.Sleep(300);
        var result = udp.Stop();
        long wrong = WrongPathPackets() - wrongBefore;
        _out.WriteLine($"udp: {result}; packets on the wrong uplink: {wrong}");
        Assert.Equal(0, result.Lost);
        Assert.True(wrong <= 4, $"{wrong} packets arrived on the wrong uplink");
        HostSignals.RequestStop(restarted.Id);
        Assert.True(restarted.WaitForExit(10_000), "the host stops on SIGTERM");
    }

    private static string PidFile(string runtimeDirectory) => Path.Combine(runtimeDirectory, "pluginhost.pid");
}
