using PluginHost.Compose;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using PluginHost.Observe;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Net;

namespace PluginHost.Cli.Commands;

/// <summary>
/// <c>pluginhost demo</c>: a self-contained lab in network namespaces (client, router with two
/// uplinks, server). The host runs on the router with SourcePolicy, real UDP flows from three client
/// sources, and the output shows which uplink each took. Everything is removed at the end, also on Ctrl-C.
/// </summary>
internal static class DemoCommand
{
    private const string Prefix = "phd";
    private const string DemoLockDirectory = "/run/pluginhost-demo";
    private static readonly IPAddress PinnedHost = IPAddress.Parse("198.18.1.30");

    public static Command Create()
    {
        var packets = new Option<int>("--packets")
        {
            Description = "UDP packets sent from each client source",
            DefaultValueFactory = _ => 2000,
        };
        var plugins = new Option<DirectoryInfo?>("--plugins")
        {
            Description = "Plugins directory (default: the one next to the host)",
        };
        var keep = new Option<bool>("--keep")
        {
            Description = "Leave the lab and the datapath in place after the demo (remove with ip netns del phd-client phd-router phd-server)",
        };
        var json = CommonOptions.Json();
        var command = new Command("demo", "Build a namespace lab, policy-route real traffic through it with SourcePolicy, show the paths and counters, clean up")
        {
            packets, plugins, keep, json,
        };
        command.SetAction(parse => CommonOptions.Guard(() => Run(
            parse.GetValue(packets),
            parse.GetValue(plugins)?.FullName ?? Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "plugins")),
            parse.GetValue(keep),
            parse.GetValue(json))));
        return command;
    }

    private static int Run(int packets, string pluginsDirectory, bool keep, bool json)
    {
        // With --json the narrative goes to stderr and stdout carries one JSON document.
        var say = json ? Console.Error : Console.Out;
        if (Environment.UserName != "root")
        {
            Console.Error.WriteLine("pluginhost: run demo: needs root (network namespaces, BPF)");
            return 1;
        }
        // The demo's names are fixed (namespaces phd-*, pins under /sys/fs/bpf/pluginhost-demo): one demo at a time, and a
        // second one must not clean up the first's lab on its way out.
        using var demoLock = RuntimeLock.TryAcquire(DemoLockDirectory, out int? holder)
            ?? throw new HostException($"run demo: another demo is running ({(holder is null ? "pid not written yet" : $"pluginhost pid {holder}")}; wait for it to finish)");
        string work = Path.Combine(Path.GetTempPath(), $"pluginhost-demo-{Environment.ProcessId}");
        string bpfRoot = "/sys/fs/bpf/pluginhost-demo";
        string runtime = Path.Combine(work, "run");
        Directory.CreateDirectory(work);

        RouterLab? lab = null;
        HostEngine? engine = null;
        bool cleaned = false;
        void Cleanup()
        {
            if (cleaned || keep)
                return;
            cleaned = true;
            try { engine?.Uninstall(); } catch (Exception e) { Console.Error.WriteLine($"pluginhost: remove demo datapath: {e.Message}"); }
            try { PluginHost.Kernel.BpfFs.RemoveTree(bpfRoot); } catch (Exception e) { Console.Error.WriteLine($"pluginhost: remove {bpfRoot}: {e.Message}"); }
            lab?.Dispose();
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
            (json ? Console.Error : Console.Out).WriteLine("lab removed (namespaces, veths, pins)");
        }
        // Ctrl-C and SIGTERM clean up before the process goes.
        void OnSignal(PosixSignalContext c)
        {
            c.Cancel = true;
            Console.WriteLine("\ninterrupted: cleaning up");
            Cleanup();
            Environment.Exit(130);
        }
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        try
        {
            say.WriteLine("PluginHost demo: client ── router (lan0 → up1 | up2) ── server, each in its own network namespace");
            var watch = Stopwatch.StartNew();
            lab = new RouterLab(Prefix);
            lab.Client.Exec("ip", "addr", "add", $"{PinnedHost}/24", "dev", RouterLab.ClientLan);
            say.WriteLine($"[1/4] lab up in {watch.ElapsedMilliseconds} ms: {string.Join(", ", lab.Namespaces.Select(n => n.Name))}; " +
                              $"the kernel routes {RouterLab.ServerNetwork} via up1");

            string configPath = Path.Combine(work, "demo.yaml");
            File.WriteAllText(configPath, ConfigText(lab, pluginsDirectory, bpfRoot, runtime));
            using var loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole(o => o.SingleLine = true));
            engine = new HostEngine(ConfigLoader.Load(configPath), loggers);
            var deployed = engine.Apply().Single();
            say.WriteLine($"[2/4] host on {lab.Router.Name}: pipeline lan-in on lan0 ingress, generation {deployed.Generation}, " +
                              $"tcx link {deployed.LinkId} → program {deployed.ProgramId} " +
                              $"(compose {deployed.Compose.TotalMilliseconds:F0} ms, clang {(deployed.CompileCached ? "cached" : $"{deployed.Compile.TotalMilliseconds:F0} ms")}, " +
                              $"load {deployed.Load.TotalMilliseconds:F0} ms, attach {deployed.Swap.TotalMilliseconds:F1} ms)");
            say.WriteLine("      SourcePolicy routes: 198.18.1.16/28 → up2 via 198.18.3.2;  198.18.1.30/32 → up1 via 198.18.2.2");

            say.WriteLine($"[3/4] {packets} UDP packets from each client source to {RouterLab.ServerAddress}:{PathProbe.Port}");
            var sources = new[] { RouterLab.ClientSourceA, RouterLab.ClientSourceB, PinnedHost };
            var observed = PathProbe.Measure(lab, sources, packets);
            say.WriteLine($"      {"SOURCE",-13} {"RULE",-26} {"SENT",6} {"RECEIVED",9} {"AT up1",7} {"AT up2",7}  PATH");
            foreach (var o in observed)
            {
                string rule = o.Source.Equals(PinnedHost) ? "198.18.1.30/32 (beats /28)"
                    : o.Source.Equals(RouterLab.ClientSourceB) ? "198.18.1.16/28" : "none: kernel route";
                say.WriteLine($"      {o.Source,-13} {rule,-26} {o.Sent,6} {o.Received,9} {o.Uplink1Packets,7} {o.Uplink2Packets,7}  {o.Uplink ?? "split/lost"}");
            }

            say.WriteLine("[4/4] counters read from the pinned maps (what `pluginhost stats` shows):");
            if (!json)
                foreach (var state in PipelineState.LoadAll(runtime))
                    StatsTable.Print(state, CounterReader.ReadPinned(state));

            bool ok = observed[0].Uplink == "up1" && observed[1].Uplink == "up2" && observed[2].Uplink == "up1"
                      && observed.All(o => o.Received == o.Sent);
            say.WriteLine(ok
                ? "result: every source took its configured path, no packet lost"
                : "result: UNEXPECTED paths or losses (see the table above)");
            if (json)
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                {
                    ok,
                    paths = observed.Select(o => new { source = o.Source.ToString(), o.Sent, o.Received, atUplink1 = o.Uplink1Packets, atUplink2 = o.Uplink2Packets, uplink = o.Uplink }),
                    stats = Observe.StatusReport.Stats(runtime),
                }, Observe.HostJson.Options));
            if (keep)
                say.WriteLine($"kept: namespaces {string.Join(" ", lab.Namespaces.Select(n => n.Name))}, pins under {bpfRoot}, config {configPath}");
            return ok ? 0 : 1;
        }
        finally
        {
            Cleanup();
        }
    }

    private static string ConfigText(RouterLab lab, string plugins, string bpfRoot, string runtime) => $"""
        # Written by `pluginhost demo`.
        pluginsDirectory: {plugins}
        bpfRoot: {bpfRoot}
        runtimeDirectory: {runtime}
        pipelines:
          - name: lan-in
            namespace: {lab.Router.Name}
            interface: {RouterLab.RouterLan}
            direction: ingress
            stages:
              - plugin: SourcePolicy
                settings:
                  routes:
                    - from: 198.18.1.16/28
                      interface: {RouterLab.RouterUplink2}
                      via: {RouterLab.Uplink2Gateway}
                    - from: {PinnedHost}/32
                      interface: {RouterLab.RouterUplink1}
                      via: {RouterLab.Uplink1Gateway}
        """;
}
