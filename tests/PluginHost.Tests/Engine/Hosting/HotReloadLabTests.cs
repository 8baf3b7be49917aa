using PluginHost.TestSupport;
using PluginHost.Compose;
using PluginHost.Observe;
using System.Diagnostics;
using System.Net;
using PluginHost.Net;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Engine.Hosting;

/// <summary>
/// The promise of hot reload, measured on real traffic through the router namespace: a sequence-numbered
/// UDP stream and a long-lived TCP connection while the host reloads, fails to reload, and dies.
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class HotReloadLabTests : IDisposable
{
    private const int Pps = 20_000;
    private readonly RouterLab _lab = new("h" + Guid.NewGuid().ToString("N")[..4]);
    private readonly ReloadRig _rig = new();
    private readonly ITestOutputHelper _out;

    public HotReloadLabTests(ITestOutputHelper output)
    {
        _out = output;
        _hosts = new HostProcesses(output);
        _rig.UsePlugin(Repo.MarkPolicy(1));
    }

    private readonly HostProcesses _hosts;

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

    // Two configurations that send client source A out of different uplinks; both reach the server.
    private void WriteConfig(int uplink, string markSettings = "")
    {
        var (iface, gateway) = uplink == 1
            ? (RouterLab.RouterUplink1, RouterLab.Uplink1Gateway)
            : (RouterLab.RouterUplink2, RouterLab.Uplink2Gateway);
        _rig.WriteConfig(_lab.Router.Name, RouterLab.RouterLan, $"""
                  - plugin: MarkPolicy
            {markSettings}
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {iface}
                          via: {gateway}
            """);
    }

    private void WarmNeighbours(HostEngine engine)
    {
        foreach (int uplink in new[] { 1, 2 })
        {
            WriteConfig(uplink);
            engine.Reconfigure(ConfigLoader.Load(_rig.ConfigPath));
            engine.Apply();
            UdpTraffic.Send(_lab.Client, RouterLab.ClientSourceA, new IPEndPoint(RouterLab.ServerAddress, 9999), 3);
        }
        Thread.Sleep(200);
    }

    private (UdpStream Udp, TcpStream Tcp) StartTraffic() =>
        (UdpStream.Start(_lab.Client, RouterLab.ClientSourceA, _lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9100), Pps),
         TcpStream.Start(_lab.Client, RouterLab.ClientSourceA, _lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9200)));

    private PipelineCounters Counters() => CounterReader.ReadPinned(_rig.State);

    private static ulong Faults(PipelineCounters c) =>
        c.Stages.Aggregate(0ul, (sum, s) => sum + s[StageCounter.MissedTailCalls] + s[StageCounter.GenerationMismatch]);

    [KernelFact]
    public void HundredReloadsOfPluginVersionsAndConfigsLoseNothing()
    {
        WriteConfig(2);
        var engine = _rig.Engine(retireAfter: TimeSpan.FromMilliseconds(200));
        engine.Apply();
        WarmNeighbours(engine);
        ulong faultsBefore = Faults(Counters());
        var (udp, tcp) = StartTraffic();
        using var udpOwner = udp; // stopped below; disposed however the test ends
        using var tcpOwner = tcp;
        Thread.Sleep(300);

        var kinds = new Dictionary<ApplyKind, int>();
        var timings = new List<double>();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < 120; i++)
        {
            // Alternate: plugin v1/v2 (new code, new generation) and uplink 1/2 (same code, map update).
            if (i % 2 == 0)
                _rig.UsePlugin(Repo.MarkPolicy(1 + (i / 2) % 2));
            else
                WriteConfig(1 + (i / 2) % 2);
            engine.Reconfigure(ConfigLoader.Load(_rig.ConfigPath));
            var result = engine.Apply().Single();
            kinds[result.Kind] = kinds.GetValueOrDefault(result.Kind) + 1;
            timings.Add(result.Total.TotalMilliseconds);
            engine.RetireDue();
        }
        var elapsed = watch.Elapsed;
        Thread.Sleep(300);
        var udpResult = udp.Stop();
        var tcpResult = tcp.Stop();
        var counters = Counters();
        _out.WriteLine($"120 applies in {elapsed.TotalSeconds:F1} s: {string.Join(", ", kinds.Select(k => $"{k.Key} {k.Value}"))}; " +
                       $"apply p50 {Percentile(timings, 50):F1} ms, p99 {Percentile(timings, 99):F1} ms");
        _out.WriteLine($"udp: {udpResult}");
        _out.WriteLine($"tcp: {tcpResult}");

        Assert.True(kinds.GetValueOrDefault(ApplyKind.Swapped) + kinds.GetValueOrDefault(ApplyKind.MapsUpdated) >= 100, "at least 100 real reloads");
        Assert.True(kinds.GetValueOrDefault(ApplyKind.Swapped) >= 50, "at least 50 generation swaps");
        Assert.Equal(0, udpResult.Lost);
        Assert.True(udpResult.PacketsPerSecond >= Pps * 0.9, $"stream rate {udpResult.PacketsPerSecond:F0} pps");
        Assert.True(tcpResult.Ok, tcpResult.ToString());
        Assert.Equal(faultsBefore, Faults(counters));
    }

    [KernelFact]
    public void VerifierAndTemplateFailuresUnderTrafficKeepTheRunningGeneration()
    {
        WriteConfig(2);
        var engine = _rig.Engine();
        engine.Apply();
        WarmNeighbours(engine);
        uint program = _rig.AttachedProgramId();
        var (udp, tcp) = StartTraffic();
        using var udpOwner = udp; // stopped below; disposed however the test ends
        using var tcpOwner = tcp;
        Thread.Sleep(300);

        WriteConfig(1, "        settings: { verifierBug: true }");
        engine.Reconfigure(ConfigLoader.Load(_rig.ConfigPath));
        var verifier = Assert.Throws<ChainLoadException>(() => engine.Apply());
        Thread.Sleep(200);
        WriteConfig(1, "        settings: { templateBug: true }");
        engine.Reconfigure(ConfigLoader.Load(_rig.ConfigPath));
        var template = Assert.Throws<PluginHost.Compose.TemplateException>(() => engine.Apply());
        Thread.Sleep(300);
        var udpResult = udp.Stop();
        var tcpResult = tcp.Stop();
        _out.WriteLine(verifier.Message);
        _out.WriteLine(template.Message);
        _out.WriteLine($"udp: {udpResult}");

        Assert.Contains("stage 0 (plugin MarkPolicy)", verifier.Message);
        Assert.Contains("mark_policy.c.sbn:", verifier.Message);
        Assert.Equal(program, _rig.AttachedProgramId());
        Assert.Equal(0, udpResult.Lost);
        Assert.True(tcpResult.Ok, tcpResult.ToString());
        Assert.Equal(2, ReloadHistory.Load(_rig.RuntimeDirectory).Failures);
    }

    [KernelFact]
    public void KilledHostKeepsForwardingAndARestartAdoptsWithoutTouchingAnything()
    {
        WriteConfig(2);
        var warm = _rig.Engine();
        warm.Apply();
        WarmNeighbours(warm);
        WriteConfig(2);

        var host = _hosts.Start(_rig.ConfigPath); // owned (and disposed) by the test class
        HostProcesses.WaitFor(() => ReloadHistory.Load(_rig.RuntimeDirectory).Reloads >= 3 + 1, "the host's first apply");
        uint linkId, programId;
        using (var link = PluginHost.Kernel.TcxLink.OpenPinned(Path.Combine(_rig.BpfRoot, "p", "link")))
            (linkId, programId) = (link.Info.LinkId, link.Info.ProgramId);
        var (udp, tcp) = StartTraffic();
        using var udpOwner = udp; // stopped below; disposed however the test ends
        using var tcpOwner = tcp;
        Thread.Sleep(500);
        string seenPin = _rig.State.Maps.Single(m => m.PinName == "MarkPolicy-0-seen").Pin;
        var learned = ReloadRig.Dump(seenPin);
        Assert.NotEmpty(learned); // the datapath learned the client's source at run time

        host.Kill(); // SIGKILL: no cleanup of any kind
        host.WaitForExit();
        Thread.Sleep(1000);
        long receivedWhileDead = udp.Received;
        Thread.Sleep(500);
        Assert.True(udp.Received > receivedWhileDead, "traffic flows while no host runs");

        int reloadsBefore = ReloadHistory.Load(_rig.RuntimeDirectory).Reloads;
        var restarted = _hosts.Start(_rig.ConfigPath);
        HostProcesses.WaitFor(() => ReloadHistory.Load(_rig.RuntimeDirectory).Reloads > reloadsBefore, "the restarted host's first apply");
        Thread.Sleep(300);
        var udpResult = udp.Stop();
        var tcpResult = tcp.Stop();
        _out.WriteLine($"udp: {udpResult}");
        _out.WriteLine(ReloadHistory.Load(_rig.RuntimeDirectory).LastSuccess);

        using (var link = PluginHost.Kernel.TcxLink.OpenPinned(Path.Combine(_rig.BpfRoot, "p", "link")))
            Assert.Equal((linkId, programId), (link.Info.LinkId, link.Info.ProgramId));
        Assert.Contains("unchanged", ReloadHistory.Load(_rig.RuntimeDirectory).LastSuccess);
        var after = ReloadRig.Dump(seenPin);
        Assert.All(learned.Keys, k => Assert.True(after.ContainsKey(k), $"learned entry {k} survived"));
        Assert.Equal(0, udpResult.Lost);
        Assert.True(tcpResult.Ok, tcpResult.ToString());
        HostSignals.RequestStop(restarted.Id);
        Assert.True(restarted.WaitForExit(10_000), "the host stops on SIGTERM");
        Assert.Equal(0, restarted.ExitCode);
    }



    private static double Percentile(List<double> values, int p)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, sorted.Count * p / 100)];
    }
}
