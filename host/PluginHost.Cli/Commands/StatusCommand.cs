using PluginHost.Compose;
using System.CommandLine;
using System.Text.Json;
using PluginHost.Observe;
using PluginHost.Datapath;
using PluginHost.Control;
using PluginHost.Kernel;

namespace PluginHost.Cli.Commands;

/// <summary><c>pluginhost status</c> and <c>pluginhost stats</c>: read the pinned datapath, no daemon needed.</summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var config = CommonOptions.Config(required: false);
        var runtime = CommonOptions.RuntimeDirectory();
        var json = CommonOptions.Json();
        var command = new Command("status", "Show the deployed pipelines, their generation, link and program") { config, runtime, json };
        command.SetAction(parse => CommonOptions.Guard(() =>
        {
            string dir = CommonOptions.ResolveRuntimeDirectory(parse.GetValue(config), parse.GetValue(runtime));
            var rows = StatusReport.Status(dir);
            var history = Hosting.ReloadHistory.Load(dir);
            var quarantined = Plugins.PluginCalls.Read(Plugins.PluginCalls.QuarantineFileIn(dir));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { pipelines = rows, reloads = history, quarantined }, HostJson.Options));
                return 0;
            }
            PrintHistory(history);
            foreach (var q in quarantined)
                Console.WriteLine($"plugin {q.Plugin} QUARANTINED since {q.Since:u}: a host died in its {q.Call} (build sha256 {q.Sha256}); " +
                    "its stages keep what runs until a new build is dropped in");
            if (rows.Count == 0)
            {
                Console.WriteLine("no pipelines deployed");
                return 0;
            }
            Console.WriteLine($"{"PIPELINE",-16} {"HOOK",-22} {"NETNS",-14} {"GEN",4} {"LINK",6} {"PROGRAM",8}  STAGES");
            foreach (var r in rows)
                Console.WriteLine($"{r.Name,-16} {r.Interface + " " + r.Direction,-22} {r.Namespace ?? "-",-14} {r.Generation,4} " +
                    $"{(r.Attached ? r.LinkId.ToString() : "-"),6} {(r.Attached ? r.ProgramId.ToString() : "-"),8}  " +
                    (r.Attached ? string.Join(" → ", r.Stages) : $"NOT ATTACHED: {r.Problem}"));
            foreach (var r in rows.Where(r => r.Attached && r.Problem is not null))
                Console.WriteLine($"{r.Name}: PROBLEM: {r.Problem}");
            // Which plugin builds run, and what their canaries showed.
            foreach (var r in rows)
            {
                foreach (var b in r.Builds.Where(b => b.Sha256.Length > 0))
                    Console.WriteLine($"{r.Name}: stage {b.Index} {b.Plugin} {(b.Version.Length > 0 ? b.Version : "(no version)")} sha256 {b.Sha256[..Math.Min(12, b.Sha256.Length)]}");
                if (r.CanariesPassed > 0)
                    Console.WriteLine($"{r.Name}: {r.CanariesPassed} canaries passed");
            }
            // Routes whose interface is missing or down: the kernel routes their packets until it is back.
            foreach (var r in rows)
                foreach (var w in r.Withdrawn)
                    Console.WriteLine($"{r.Name}: {w.Routes} route{(w.Routes == 1 ? "" : "s")} via {w.Interface} withdrawn since {w.Since:u}: {w.Reason}");
            // Health probes: a down target is out of its stage's tables (the plugin decides what that means).
            foreach (var r in rows)
                foreach (var p in r.Probes)
                    Console.WriteLine($"{r.Name}: probe {p.Probe} (stage {p.Stage} {p.Plugin}, {ProbeTarget(p)}): {p.State.ToString().ToUpperInvariant()} since {p.Since:u}" +
                        (p.LastError is null ? "" : p.State == Contract.ProbeState.Down ? $": {p.LastError}" : $" (last error: {p.LastError})"));
            // With the configuration at hand, say which deployed pipelines it no longer names: they keep forwarding.
            if (parse.GetValue(config) is { } file)
                foreach (var name in Hosting.HostEngine.Unconfigured(Config.ConfigLoader.Load(file.FullName)))
                    Console.WriteLine($"{name}: no longer in {file.FullName}; it keeps forwarding until `pluginhost uninstall --config {file.FullName} --pipeline {name}`");
            return 0;
        }));
        return command;
    }

    private static string ProbeTarget(Health.ProbeStatus p) => p.Kind == Contract.ProbeKind.Icmp
        ? $"icmp {p.Target} via {p.Interface}"
        : $"tcp {(p.Target.Contains(':') ? $"[{p.Target}]" : p.Target)}:{p.Port} via {p.Interface}";

    private static void PrintHistory(Hosting.ReloadHistory h)
    {
        if (h.Reloads == 0)
            return;
        Console.WriteLine($"reloads: {h.Reloads} ({h.Failures} failed)");
        if (h.LastSuccessAt is not null)
            Console.WriteLine($"  last applied {h.LastSuccessAt:u}: {h.LastSuccess}");
        if (h.LastFailureAt is not null)
            Console.WriteLine($"  last FAILED  {h.LastFailureAt:u} (running generation kept{(h.Failing ? "" : $"; cleared {h.LastSuccessAt:u}")}): {h.LastFailure}");
    }
}

internal static class StatsCommand
{
    public static Command Create()
    {
        var config = CommonOptions.Config(required: false);
        var runtime = CommonOptions.RuntimeDirectory();
        var json = CommonOptions.Json();
        var watch = new Option<bool>("--watch", "-w") { Description = "Show packet rates per second, refreshed until Ctrl-C" };
        var interval = new Option<double>("--interval") { Description = "Seconds between refreshes with --watch", DefaultValueFactory = _ => 1.0 };
        var count = new Option<int?>("--count") { Description = "Stop --watch after this many refreshes" };
        var command = new Command("stats", "Show per-pipeline and per-stage packet counters (totals across reloads)") { config, runtime, json, watch, interval, count };
        command.SetAction(parse => CommonOptions.Guard(() =>
        {
            string dir = CommonOptions.ResolveRuntimeDirectory(parse.GetValue(config), parse.GetValue(runtime));
            if (parse.GetValue(watch))
                return Watch(dir, TimeSpan.FromSeconds(Math.Max(0.1, parse.GetValue(interval))), parse.GetValue(count), parse.GetValue(json));
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(StatusReport.Stats(dir), HostJson.Options));
                return 0;
            }
            var states = PipelineState.LoadAll(dir);
            if (states.Count == 0)
                Console.WriteLine("no pipelines deployed");
            foreach (var state in states)
                StatsTable.Print(state, CounterReader.ReadPinned(state));
            return 0;
        }));
        return command;
    }

    // What was counted between two readings: one JSON line per refresh, or rates per second in a table.
    private static int Watch(string dir, TimeSpan interval, int? count, bool json)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        var previous = StatusReport.Stats(dir);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; count is null || i < count; i++)
        {
            if (stop.Token.WaitHandle.WaitOne(interval))
                break;
            var now = StatusReport.Stats(dir);
            double seconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            // A pipeline deployed since the last reading has nothing to count from yet: zeros.
            var counted = now.Select(p => p.Since(previous.FirstOrDefault(q => q.Pipeline == p.Pipeline) ?? p)).ToList();
            previous = now;
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new { seconds, pipelines = counted }, HostJson.Lines));
                continue;
            }
            if (!Console.IsOutputRedirected)
                Console.Clear();
            Console.WriteLine($"{DateTime.Now:HH:mm:ss}  rates per second (Ctrl-C stops)");
            Console.WriteLine($"{"PIPELINE",-14} {"STAGE",-20} {"PACKETS/S",11} {"REDIR-BITS/S",12} {"REDIRECTED/S",13} {"PASSED/S",10} {"DROPPED/S",10}");
            foreach (var p in counted)
                foreach (var s in p.Stages)
                    Console.WriteLine($"{p.Pipeline,-14} {$"{s.Index} {s.Plugin}",-20} {s[StageCounter.Packets] / seconds,11:F0} " +
                        $"{8 * s[StageCounter.RedirectedBytes] / seconds,12:F0} {s[StageCounter.Redirected] / seconds,13:F0} " +
                        $"{s[StageCounter.Passed] / seconds,10:F0} {s[StageCounter.Dropped] / seconds,10:F0}");
        }
        return 0;
    }
}

/// <summary>Counters as a table, shared by <c>stats</c> and the demo.</summary>
internal static class StatsTable
{
    public static void Print(PipelineState state, PipelineCounters c)
    {
        var e = c.Entry;
        Console.WriteLine($"pipeline {state.Name} ({state.Interface} {state.Direction}, generation {state.Generation})");
        Console.WriteLine($"  entry: {e[EntryCounter.Packets]} packets, {e[EntryCounter.Bytes]} bytes; IPv4 {e[EntryCounter.Ipv4]}, IPv6 {e[EntryCounter.Ipv6]}, fragments {e[EntryCounter.Fragments]}");
        Console.WriteLine($"         passed to the kernel: ARP {e[EntryCounter.PassArp]}, ND {e[EntryCounter.PassNeighbourDiscovery]}, non-IP {e[EntryCounter.PassNonIp]}, " +
                          $"truncated {e[EntryCounter.PassTruncated]}, bad header {e[EntryCounter.PassBadHeader]}, headers too long {e[EntryCounter.PassHeadersTooLong]}, " +
                          $"VLAN {e[EntryCounter.PassVlan]}, QinQ {e[EntryCounter.PassQinq]}, length beyond frame {e[EntryCounter.PassLengthBeyondFrame]}");
        Console.WriteLine($"  {"STAGE",-22} {"PACKETS",9} {"MATCHED",9} {"REDIRECTED",10} {"PASSED",9} {"DROPPED",9} {"REDIR-ERR",9} {"TTL-EXP",9} {"MISSED-TC",9} {"GEN-MISM",9} {"TGT-DOWN",9}");
        foreach (var s in c.Stages)
        {
            Console.WriteLine($"  {$"{s.Index} {s.Plugin}",-22} {s[StageCounter.Packets],9} {s[StageCounter.Matched],9} {s[StageCounter.Redirected],10} " +
                              $"{s[StageCounter.Passed],9} {s[StageCounter.Dropped],9} {s[StageCounter.RedirectErrors],9} {s[StageCounter.TtlExpired],9} {s[StageCounter.MissedTailCalls],9} {s[StageCounter.GenerationMismatch],9} {s[StageCounter.TargetDown],9}");
        }
    }
}
