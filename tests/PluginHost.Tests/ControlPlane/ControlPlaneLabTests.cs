using PluginHost.TestSupport;
using PluginHost.Compose;
using PluginHost.Observe;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using PluginHost.Net;
using PluginHost.Control;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Runtime;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.ControlPlane;

/// <summary>The running host's control plane, driven like an operator would, under real traffic.</summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class ControlPlaneLabTests : IDisposable
{
    private readonly RouterLab _lab = new("c" + Guid.NewGuid().ToString("N")[..4]);
    private readonly ReloadRig _rig = new();
    private readonly ITestOutputHelper _out;
    private readonly int _metricsPort = 20000 + Random.Shared.Next(10000);
    private Process? _host;

    public ControlPlaneLabTests(ITestOutputHelper output)
    {
        _out = output;
        _rig.WriteConfig(_lab.Router.Name, RouterLab.RouterLan, """
                  - plugin: SourcePolicy
                    settings:
                      routes: []
            """);
        File.AppendAllText(_rig.ConfigPath, $"\nmetrics:\n  listen: 127.0.0.1:{_metricsPort}\n");
    }

    public void Dispose()
    {
        StopHost();
        _rig.Dispose();
        _lab.Dispose();
    }

    private string Pluginhost => Path.Combine(Repo.Root, "artifacts", "pluginhost", "pluginhost");

    private void StartHost()
    {
        var psi = new ProcessStartInfo(Pluginhost, ["run", "--config", _rig.ConfigPath]) { RedirectStandardOutput = true, RedirectStandardError = true };
        _host = Process.Start(psi)!;
        _host.OutputDataReceived += (_, e) => { if (e.Data is not null) _out.WriteLine("host: " + e.Data); };
        _host.ErrorDataReceived += (_, e) => { if (e.Data is not null) _out.WriteLine("host! " + e.Data); };
        _host.BeginOutputReadLine();
        _host.BeginErrorReadLine();
        string pid = Path.Combine(_rig.RuntimeDirectory, "pluginhost.pid");
        Assert.True(SpinWait.SpinUntil(() => File.Exists(pid) && File.ReadAllText(pid).Trim() == _host.Id.ToString(), TimeSpan.FromSeconds(30)), "host started");
    }

    private void StopHost()
    {
        if (_host is null || _host.HasExited)
            return;
        HostSignals.RequestStop(_host.Id);
        if (!_host.WaitForExit(10_000))
            _host.Kill();
        _host.Dispose();
        _host = null;
    }

    private (int Exit, string Output) Cli(params string[] args) => CliAs(null, args);

    private (int Exit, string Output) CliAs(string? asUser, params string[] args)
    {
        var psi = asUser is null ? new ProcessStartInfo(Pluginhost, args) : new ProcessStartInfo("setpriv",
            ["--reuid", asUser, "--regid", asUser, "--clear-groups", Pluginhost, .. args]);
        psi.RedirectStandardOutput = psi.RedirectStandardError = true;
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        _out.WriteLine($"$ pluginhost {string.Join(' ', args)}{(asUser is null ? "" : $" (as uid {asUser})")}\n{output}");
        return (p.ExitCode, output);
    }

    // A command that should end by itself (a refused `run`): killed (by its pid) if it is still running after the timeout.
    private (int Exit, string Output) CliBounded(TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(Pluginhost, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill();
            p.WaitForExit();
        }
        string output = stdout.Result + stderr.Result;
        _out.WriteLine($"$ pluginhost {string.Join(' ', args)}\n{output}");
        return (p.ExitCode, output);
    }

    private CommandResult Route(string verb, params (string Name, string Value)[] args)
    {
        using var client = ControlClient.TryCreate(_rig.RuntimeDirectory)!;
        var request = new CommandRequest("route", verb, args.ToDictionary(a => a.Name, a => a.Value));
        return client.Post("/v1/commands", request).Deserialize<CommandResult>(ControlServer.Json)!;
    }

    private ulong Redirected() => CounterReader.ReadPinned(_rig.State).Stages[0][StageCounter.Redirected];

    [KernelFact]
    public void RouteAddAndDelMoveASourceUnderTrafficWithoutLossAndSurviveARestart()
    {
        StartHost();
        Route("list"); // the first call pays for loading code; the measured ones below must not
        UdpTraffic.Send(_lab.Client, RouterLab.ClientSourceA, new IPEndPoint(RouterLab.ServerAddress, 9999), 3);
        // Resolve uplink 2's neighbour (one datagram from the router; no ping needed on the machine).
        UdpTraffic.Send(_lab.Router, RouterLab.RouterUplink2Address, new IPEndPoint(RouterLab.Uplink2Gateway, 9), 1);
        Thread.Sleep(100);
        using var udp = UdpStream.Start(_lab.Client, RouterLab.ClientSourceA, _lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9100), 20_000);
        Thread.Sleep(300);
        long up2Before = InterfaceCounters.Read(_lab.Server, RouterLab.ServerUplink2).RxPackets;

        var watch = Stopwatch.StartNew();
        var added = Route("add", ("from", $"{RouterLab.ClientSourceA}/32"), ("interface", RouterLab.RouterUplink2), ("via", RouterLab.Uplink2Gateway.ToString()));
        double addMs = watch.Elapsed.TotalMilliseconds;
        ulong redirectedAtAdd = Redirected();
        Thread.Sleep(300);
        Assert.True(Redirected() > redirectedAtAdd + 1000, "traffic follows the added route");
        long up2Moved = InterfaceCounters.Read(_lab.Server, RouterLab.ServerUplink2).RxPackets - up2Before;

        watch.Restart();
        var deleted = Route("del", ("from", $"{RouterLab.ClientSourceA}/32"));
        double delMs = watch.Elapsed.TotalMilliseconds;
        ulong redirectedAtDel = Redirected();
        Thread.Sleep(300);
        Assert.True(Redirected() - redirectedAtDel < 50, "traffic is back on the kernel's route");
        var result = udp.Stop();
        _out.WriteLine($"route add {addMs:F1} ms (host side {added.Milliseconds:F1} ms), route del {delMs:F1} ms (host side {deleted.Milliseconds:F1} ms); udp: {result}");

        Assert.Equal(ApplyKind.MapsUpdated, added.Applied);
        Assert.Equal(1, added.EntriesChanged);
        Assert.InRange(addMs, 0, 100);
        Assert.InRange(delMs, 0, 100);
        Assert.True(up2Moved > 1000, $"uplink 2 received {up2Moved}");
        Assert.Equal(0, result.Lost);

        // Kept across a restart: the desired-state file beside the config.
        Route("add", ("from", $"{RouterLab.ClientSourceB}/32"), ("interface", RouterLab.RouterUplink2), ("via", RouterLab.Uplink2Gateway.ToString()));
        StopHost();
        StartHost();
        var (exit, listed) = Cli("route", "list", "--config", _rig.ConfigPath);
        Assert.Equal(0, exit);
        Assert.Contains($"{RouterLab.ClientSourceB}/32", listed);
        Assert.DoesNotContain($"{RouterLab.ClientSourceA}/32", listed);
        Assert.Equal("up2", PathProbe.Measure(_lab, [RouterLab.ClientSourceB], 200).Single().Uplink);

        // A bad route is refused with the value at fault, and nothing changes.
        var (badExit, badOutput) = Cli("route", "add", "--config", _rig.ConfigPath, "--from", "198.18.1.0/33", "--interface", "up2");
        Assert.Equal(1, badExit);
        Assert.Contains("invalid prefix '198.18.1.0/33'", badOutput);
        Assert.Equal("up2", PathProbe.Measure(_lab, [RouterLab.ClientSourceB], 50).Single().Uplink);
    }

    [KernelFact]
    public void ASecondRunOnTheSameRuntimeDirectoryIsRefusedAndTheFirstHostStaysManaged()
    {
        StartHost();
        int first = _host!.Id;
        string statusBefore = Cli("status", "--json", "--runtime-dir", _rig.RuntimeDirectory).Output;

        // The same configuration: same runtime directory, socket, pins and metrics port.
        var (exit, output) = CliBounded(TimeSpan.FromSeconds(30), "run", "--config", _rig.ConfigPath);
        Assert.Equal(1, exit);
        Assert.Contains($"run host: runtime directory {_rig.RuntimeDirectory} is held by pluginhost pid {first} " +
                        "(stop it first, or give this host another runtimeDirectory)", output);
        // Refused before anything: no apply (same generation, link, program, reload history), the pid file and the lock still the first's.
        Assert.DoesNotContain("running (pid", output);
        Assert.False(_host.HasExited, "the first host still runs");
        Assert.Equal(statusBefore, Cli("status", "--json", "--runtime-dir", _rig.RuntimeDirectory).Output);
        Assert.Equal(first.ToString(), File.ReadAllText(Path.Combine(_rig.RuntimeDirectory, "pluginhost.pid")).Trim());
        Assert.Equal(first, PluginHost.Net.RuntimeLock.ReadPid(_rig.RuntimeDirectory));

        // The first host still answers on its socket and still changes its datapath.
        using (var client = ControlClient.TryCreate(_rig.RuntimeDirectory)!)
            Assert.Equal("p", client.Get("/v1/status").GetProperty("pipelines").EnumerateArray().Single().GetProperty("name").GetString());
        var (statusExit, status) = Cli("status", "--runtime-dir", _rig.RuntimeDirectory);
        Assert.Equal(0, statusExit);
        Assert.Contains("SourcePolicy", status);
        var (addExit, added) = Cli("route", "add", "--config", _rig.ConfigPath,
            "--from", $"{RouterLab.ClientSourceB}/32", "--interface", RouterLab.RouterUplink2, "--via", RouterLab.Uplink2Gateway.ToString());
        Assert.Equal(0, addExit);
        Assert.Contains("pipeline p stage 0", added);
        Assert.Contains($"{RouterLab.ClientSourceB}/32", Cli("route", "list", "--config", _rig.ConfigPath).Output);
        Assert.Equal("up2", PathProbe.Measure(_lab, [RouterLab.ClientSourceB], 200).Single().Uplink);

        // Once the first has stopped, the directory is free again.
        StopHost();
        StartHost();
    }

    [KernelFact]
    public void OnlyRootCanUseTheControlSocket()
    {
        StartHost();
        string socket = Path.Combine(_rig.RuntimeDirectory, "api", "pluginhost.sock");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(socket)!));

        // Everything up to the socket's own directory is readable, so only the socket's protection is tested.
        File.SetUnixFileMode(_rig.Work, (UnixFileMode)0b111_101_101);
        var (exit, output) = CliAs("65534", "reload", "--runtime-dir", _rig.RuntimeDirectory);
        Assert.Equal(1, exit);
        Assert.Contains("permission denied", output);

        var (rootExit, rootOutput) = Cli("reload", "--runtime-dir", _rig.RuntimeDirectory);
        Assert.Equal(0, rootExit);
        Assert.Contains("p: unchanged", rootOutput);
    }

    [KernelFact]
    public async Task MetricsGrowUnderTrafficAndAgreeWithStatsJson()
    {
        StartHost();
        Route("add", ("from", $"{RouterLab.ClientSourceA}/32"), ("interface", RouterLab.RouterUplink2), ("via", RouterLab.Uplink2Gateway.ToString()));
        using var http = new HttpClient();
        string url = $"http://127.0.0.1:{_metricsPort}/metrics";
        using (var udp = UdpStream.Start(_lab.Client, RouterLab.ClientSourceA, _lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9100), 5_000))
        {
            Thread.Sleep(300);
            double first = Metric(await http.GetStringAsync(url), "packets");
            Thread.Sleep(300);
            double second = Metric(await http.GetStringAsync(url), "packets");
            Assert.True(second > first && first > 0, $"stage packets {first} then {second}");
            udp.Stop();
        }
        string scrape = await http.GetStringAsync(url);
        var (exit, statsJson) = Cli("stats", "--json", "--runtime-dir", _rig.RuntimeDirectory);
        Assert.Equal(0, exit);
        var stage = JsonDocument.Parse(statsJson).RootElement[0].GetProperty("stages")[0].GetProperty("counters");
        // Every stage counter, by its JSON name (camelCase) and its metric label (snake_case).
        foreach (var counter in Enum.GetValues<PluginHost.Compose.StageCounter>())
            Assert.Equal(stage.GetProperty(PluginHost.Compose.CounterLayout.JsonName(counter)).GetUInt64(),
                (ulong)Metric(scrape, PluginHost.Compose.CounterLayout.MetricName(counter)));
        Assert.True(stage.GetProperty("redirectedBytes").GetUInt64() > 0, "redirected bytes counted");
        Assert.Contains("pluginhost_reloads_total", scrape);
    }

    private static double Metric(string scrape, string counter)
    {
        string prefix = $"pluginhost_stage_total{{pipeline=\"p\",stage=\"0\",plugin=\"SourcePolicy\",counter=\"{counter}\"}} ";
        var line = scrape.Split('\n').Single(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return double.Parse(line[prefix.Length..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
