using System.CommandLine;
using System.Text.Json;
using PluginHost.Datapath;
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
            var states = PipelineState.LoadAll(dir);
            var rows = states.Select(Describe).ToList();
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

    private sealed record StatusRow(string Name, string Interface, string Direction, string? Namespace, uint Generation,
        bool Attached, uint LinkId, uint ProgramId, IReadOnlyList<string> Stages, string? Problem);

    private static StatusRow Describe(PipelineState s)
    {
        var stages = s.Stages.Select(st => st.Plugin).ToList();
        try
        {
            using var link = TcxLink.OpenPinned(Path.Combine(s.PinDirectory, PipelineDeployer.LinkPin));
            var info = link.Info;
            bool attached = info.Ifindex != 0;
            return new StatusRow(s.Name, s.Interface, s.Direction, s.Namespace, s.Generation, attached, info.LinkId, info.ProgramId, stages,
                attached ? null : "the interface is gone");
        }
        catch (Interop.BpfException e)
        {
            return new StatusRow(s.Name, s.Interface, s.Direction, s.Namespace, s.Generation, false, 0, 0, stages, e.Message);
        }
    }
}

internal static class StatsCommand
{
    public static Command Create()
    {
        var config = CommonOptions.Config(required: false);
        var runtime = CommonOptions.RuntimeDirectory();
        var json = CommonOptions.Json();
        var command = new Command("stats", "Show per-pipeline and per-stage packet counters") { config, runtime, json };
        command.SetAction(parse => CommonOptions.Guard(() =>
        {
            var states = PipelineState.LoadAll(CommonOptions.ResolveRuntimeDirectory(parse.GetValue(config), parse.GetValue(runtime)));
            var all = states.Select(s => (State: s, Counters: CounterReader.ReadPinned(s))).ToList();
            if (parse.GetValue(json))
            {
                var doc = all.Select(a => new
                {
                    pipeline = a.State.Name,
                    generation = a.State.Generation,
                    entry = a.Counters.Entry.ToDictionary(kv => CounterLayout.Snake(kv.Key.ToString()), kv => kv.Value),
                    stages = a.Counters.Stages.Select((c, i) => new
                    {
                        index = i,
                        plugin = a.State.Stages[i].Plugin,
                        counters = c.ToDictionary(kv => CounterLayout.Snake(kv.Key.ToString()), kv => kv.Value),
                    }),
                });
                Console.WriteLine(JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            if (all.Count == 0)
                Console.WriteLine("no pipelines deployed");
            foreach (var (state, counters) in all)
                StatsTable.Print(state, counters);
            return 0;
        }));
        return command;
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
                          $"truncated {e[EntryCounter.PassTruncated]}, bad header {e[EntryCounter.PassBadHeader]}, headers too long {e[EntryCounter.PassHeadersTooLong]}; missed tail calls {e[EntryCounter.MissedTailCalls]}");
        Console.WriteLine($"  {"STAGE",-22} {"PACKETS",9} {"MATCHED",9} {"REDIRECTED",10} {"PASSED",9} {"DROPPED",9} {"REDIR-ERR",9} {"TTL-EXP",9} {"MISSED-TC",9} {"GEN-MISM",9}");
        for (int i = 0; i < c.Stages.Count; i++)
        {
            var s = c.Stages[i];
            Console.WriteLine($"  {$"{i} {state.Stages[i].Plugin}",-22} {s[StageCounter.Packets],9} {s[StageCounter.Matched],9} {s[StageCounter.Redirected],10} " +
                              $"{s[StageCounter.Passed],9} {s[StageCounter.Dropped],9} {s[StageCounter.RedirectErrors],9} {s[StageCounter.TtlExpired],9} {s[StageCounter.MissedTailCalls],9} {s[StageCounter.GenerationMismatch],9}");
        }
    }
}
