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
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

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
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { pipelines = rows, reloads = history }, JsonOptions));
                return 0;
            }
            PrintHistory(history);
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
            // With the configuration at hand, say which deployed pipelines it no longer names: they keep forwarding.
            if (parse.GetValue(config) is { } file)
                foreach (var name in Hosting.HostEngine.Unconfigured(Config.ConfigLoader.Load(file.FullName)))
                    Console.WriteLine($"{name}: no longer in {file.FullName}; it keeps forwarding until `pluginhost uninstall --config {file.FullName} --pipeline {name}`");
            return 0;
        }));
        return command;
    }

    private static void PrintHistory(Hosting.ReloadHistory h)
    {
        if (h.Reloads == 0)
            return;
        Console.WriteLine($"reloads: {h.Reloads} ({h.Failures} failed)");
        if (h.LastSuccessAt is not null)
            Console.WriteLine($"  last applied {h.LastSuccessAt:u}: {h.LastSuccess}");
        if (h.LastFailureAt is not null)
            Console.WriteLine($"  last FAILED  {h.LastFailureAt:u} (running generation kept): {h.LastFailure}");
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
                Console.WriteLine(JsonSerializer.Serialize(StatusReport.Stats(dir), Control.ControlServer.Json));
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

    // Rates from the difference of two readings; one line per pipeline and stage.
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
            var rows = now.SelectMany(p => p.Stages.Select(s => (p.Pipeline, Stage: s,
                Before: previous.FirstOrDefault(q => q.Pipeline == p.Pipeline)?.Stages.FirstOrDefault(t => t.Instance == s.Instance)))).ToList();
            double Rate(IReadOnlyDictionary<string, ulong> a, IReadOnlyDictionary<string, ulong>? b, string c) =>
                b is null ? 0 : Math.Max(0, (double)(a[c] - Math.Min(a[c], b[c]))) / seconds;
            if (json)
                Console.WriteLine(JsonSerializer.Serialize(rows.Select(r => new
                {
                    pipeline = r.Pipeline, stage = r.Stage.Index, plugin = r.Stage.Plugin,
                    packetsPerSecond = Rate(r.Stage.Counters, r.Before?.Counters, "packets"),
                    redirectedPerSecond = Rate(r.Stage.Counters, r.Before?.Counters, "redirected"),
                    passedPerSecond = Rate(r.Stage.Counters, r.Before?.Counters, "passed"),
                    droppedPerSecond = Rate(r.Stage.Counters, r.Before?.Counters, "dropped"),
                })));
            else
            {
                if (!Console.IsOutputRedirected)
                    Console.Clear();
                Console.WriteLine($"{DateTime.Now:HH:mm:ss}  rates per second (Ctrl-C stops)");
                Console.WriteLine($"{"PIPELINE",-14} {"STAGE",-20} {"PACKETS/S",11} {"BITS/S",12} {"REDIRECTED/S",13} {"PASSED/S",10} {"DROPPED/S",10}");
                foreach (var r in rows)
                    Console.WriteLine($"{r.Pipeline,-14} {$"{r.Stage.Index} {r.Stage.Plugin}",-20} {Rate(r.Stage.Counters, r.Before?.Counters, "packets"),11:F0} " +
                        $"{8 * Rate(r.Stage.Counters, r.Before?.Counters, "bytes"),12:F0} {Rate(r.Stage.Counters, r.Before?.Counters, "redirected"),13:F0} " +
                        $"{Rate(r.Stage.Counters, r.Before?.Counters, "passed"),10:F0} {Rate(r.Stage.Counters, r.Before?.Counters, "dropped"),10:F0}");
            }
            previous = now;
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
                          $"truncated {e[EntryCounter.PassTruncated]}, bad header {e[EntryCounter.PassBadHeader]}, headers too long {e[EntryCounter.PassHeadersTooLong]}");
        Console.WriteLine($"  {"STAGE",-22} {"PACKETS",9} {"MATCHED",9} {"REDIRECTED",10} {"PASSED",9} {"DROPPED",9} {"REDIR-ERR",9} {"TTL-EXP",9} {"MISSED-TC",9} {"GEN-MISM",9}");
        for (int i = 0; i < c.Stages.Count; i++)
        {
            var s = c.Stages[i];
            Console.WriteLine($"  {$"{i} {state.Stages[i].Plugin}",-22} {s[StageCounter.Packets],9} {s[StageCounter.Matched],9} {s[StageCounter.Redirected],10} " +
                              $"{s[StageCounter.Passed],9} {s[StageCounter.Dropped],9} {s[StageCounter.RedirectErrors],9} {s[StageCounter.TtlExpired],9} {s[StageCounter.MissedTailCalls],9} {s[StageCounter.GenerationMismatch],9}");
        }
    }
}
