using HostYaml = PluginHost.TestSupport.HostYaml;
using System.Diagnostics;
using System.Text.Json;
using PluginHost.Net;
using PluginHost.Bench.Setup;
using PluginHost.Control;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Runtime;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// The real host (<c>artifacts/pluginhost/pluginhost run</c>) as a child process, on a private RouterLab
/// (three namespaces <c>b&lt;4 hex&gt;-client|router|server</c>) with a private plugins directory, BPF root
/// (<c>&lt;sandbox BPF root&gt;/host</c>), runtime directory and compile cache (under the sandbox's work
/// directory). Its pipeline is on the router's lan0, ingress: the four plugins, FiveTuplePolicy → LoadBalancer →
/// IPv6 → SourcePolicy; runtime route commands name their stage (<see cref="RouteStage"/>, the SourcePolicy stage).
/// Stopped with SIGTERM (it runs with <c>--detach-on-exit</c>); the lab and everything else go with the
/// sandbox (Ctrl-C included).
/// </summary>
public sealed class HostRig : IDisposable
{
    public const string Pipeline = "host";

    /// <summary>The stage runtime route commands go to: SourcePolicy, the last.</summary>
    public const int RouteStage = 3;

    private readonly Process _process;
    private readonly IDisposable _stopRegistration;
    private readonly IDisposable _labRegistration;
    private readonly Queue<string> _output = new();
    private int _disposed;

    private HostRig(RouterLab lab, IDisposable labRegistration, string work, Process process, IDisposable stopRegistration)
    {
        Lab = lab;
        _labRegistration = labRegistration;
        Work = work;
        _process = process;
        _stopRegistration = stopRegistration;
    }

    public RouterLab Lab { get; }
    public string Work { get; }
    public string RuntimeDirectory => Path.Combine(Work, "run");
    public int Pid => _process.Id;

    /// <summary>From process start to its pid file (written once the first apply, the API and the watchers are done).</summary>
    public double StartMs { get; private set; }

    public string Description => "FiveTuplePolicy (3 rules) → LoadBalancer (1 service, 2 next hops) → IPv6 (2 routes) → SourcePolicy (2 routes), on the router's lan0, ingress";

    public static HostRig Start(Sandbox sandbox, Repo repo, Action<string> log)
    {
        string work = Path.Combine(sandbox.WorkDirectory, "host");
        string plugins = Path.Combine(work, "plugins");
        Directory.CreateDirectory(plugins);
        foreach (var plugin in new[] { "FiveTuplePolicy", "LoadBalancer", "IPv6", "SourcePolicy" })
            HostYaml.CopyPlugin(Path.Combine(repo.PluginsDirectory, plugin), plugins);

        string prefix = "b" + Guid.NewGuid().ToString("N")[..4];
        log($"host: building lab {prefix}-client|router|server");
        RouterLab lab;
        try
        {
            lab = new RouterLab(prefix);
        }
        catch (Exception e)
        {
            throw new BenchException($"build lab {prefix}: {e.Message}", e);
        }
        var labRegistration = sandbox.OnTeardown($"remove lab {prefix}", lab.Dispose);

        string config = Path.Combine(work, "host.yaml");
        // The four plugins, one stage each; none takes the control plane's test prefixes (10.250.0.0/16).
        string stages = $"""
                  - plugin: FiveTuplePolicy
                    settings:
                      rules:
                        - protocol: tcp
                          dport: 443
                          action: drop
                        - protocol: udp
                          dport: 53
                          action: pass
                        - from: 10.0.0.0/16
                          action: drop
                  - plugin: LoadBalancer
                    settings:
                      services:
                        - to: 10.99.0.0/16
                          nexthops:
                            - interface: {RouterLab.RouterUplink1}
                              via: {RouterLab.Uplink1Gateway}
                            - interface: {RouterLab.RouterUplink2}
                              via: {RouterLab.Uplink2Gateway}
                  - plugin: IPv6
                    settings:
                      routes:
                        - from: 2001:db8:a::/48
                          interface: {RouterLab.RouterUplink2}
                        - from: 2001:db8:b::/48
                          interface: {RouterLab.RouterUplink1}
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 10.1.0.0/16
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
                        - from: 10.1.1.0/24
                          interface: {RouterLab.RouterUplink1}
                          via: {RouterLab.Uplink1Gateway}

            """;
        File.WriteAllText(config, HostYaml.Config(plugins, Path.Combine(sandbox.BpfRoot, "host"), Path.Combine(work, "run"), Path.Combine(work, "cache"),
            HostYaml.Pipeline(Pipeline, lab.Router.Name, RouterLab.RouterLan, stages)));

        string exe = Path.Combine(repo.Root, "artifacts", "pluginhost", "pluginhost");
        if (!File.Exists(exe))
        {
            labRegistration.Dispose();
            throw new BenchException($"start host: {exe} not built (build the solution first, or use bench/run)");
        }
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "run", "--config", config, "--detach-on-exit" })
            psi.ArgumentList.Add(a);
        log("host: starting pluginhost run (4 stages)");
        var watch = Stopwatch.StartNew();
        var process = Process.Start(psi) ?? throw new BenchException($"start host: {exe} did not start");
        var stop = sandbox.OnTeardown($"stop host pid {process.Id}", () => Stop(process));
        var rig = new HostRig(lab, labRegistration, work, process, stop);
        process.OutputDataReceived += (_, e) => rig.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => rig.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        string pidFile = Path.Combine(rig.RuntimeDirectory, "pluginhost.pid");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!(File.Exists(pidFile) && ReadPid(pidFile) == process.Id))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                string why = process.HasExited ? $"exited with {process.ExitCode}" : "no pid file after 60 s";
                string tail = rig.Tail();
                rig.Dispose();
                throw new BenchException($"start host: {why}{(tail.Length > 0 ? ":\n" + tail : "")}");
            }
            Thread.Sleep(10);
        }
        rig.StartMs = watch.Elapsed.TotalMilliseconds;
        return rig;
    }

    private void Keep(string? line)
    {
        if (line is null)
            return;
        lock (_output)
        {
            _output.Enqueue(line);
            while (_output.Count > 20)
                _output.Dequeue();
        }
    }

    /// <summary>The host's last lines of output (for error messages).</summary>
    public string Tail()
    {
        lock (_output)
            return string.Join('\n', _output);
    }

    /// <summary>A runtime command through the host's API (POST /v1/commands), to <see cref="RouteStage"/>.</summary>
    public CommandResult Command(string noun, string verb, params (string Name, string Value)[] args)
    {
        using var client = ControlClient.TryCreate(RuntimeDirectory)
            ?? throw new BenchException($"connect to host: no control socket in {RuntimeDirectory}");
        var request = new CommandRequest(noun, verb, args.ToDictionary(a => a.Name, a => a.Value), Pipeline, RouteStage);
        try
        {
            return client.Post("/v1/commands", request).Deserialize<CommandResult>(ControlServer.Json)
                ?? throw new BenchException($"{noun} {verb}: empty answer");
        }
        catch (Exception e) when (e is not BenchException)
        {
            throw new BenchException($"{noun} {verb} through the API: {e.Message}", e);
        }
    }

    /// <summary>The host's resident set (kB, VmRSS), its peak (VmHWM) and thread count, from /proc/PID/status.</summary>
    public (long RssKb, long HwmKb, int Threads) Memory()
    {
        long rss = 0, hwm = 0;
        int threads = 0;
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                rss = long.Parse(line[6..].Trim().Split(' ')[0]);
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                hwm = long.Parse(line[6..].Trim().Split(' ')[0]);
            else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                threads = int.Parse(line[8..].Trim());
        }
        return (rss, hwm, threads);
    }

    /// <summary>utime + stime of the host (all threads), in clock ticks, from /proc/PID/stat.</summary>
    public long CpuTicks()
    {
        string stat = File.ReadAllText($"/proc/{Pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        return long.Parse(fields[11]) + long.Parse(fields[12]);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stopRegistration.Dispose();
        _labRegistration.Dispose();
        _process.Dispose();
    }

    private static void Stop(Process process)
    {
        try
        {
            if (process.HasExited)
                return;
            HostSignals.RequestStop(process.Id);
            if (!process.WaitForExit(15_000))
            {
                Console.Error.WriteLine($"bench: host pid {process.Id} did not stop on SIGTERM in 15 s: killing it");
                process.Kill();
                process.WaitForExit(5_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already reaped.
        }
    }

    private static int ReadPid(string path)
    {
        try
        {
            return int.TryParse(File.ReadAllText(path).Trim(), out int pid) ? pid : -1;
        }
        catch (IOException)
        {
            return -1;
        }
    }
}
