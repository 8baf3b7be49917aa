using System.Globalization;
using System.Text.RegularExpressions;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Section 7 (issue 12): FiveTuplePolicy's classifier on ClassBench's acl1 sets, used only through configurations and
/// the engine. Per set (1k, 10k, 100k, and 10 rules of the 1k set as a small-set baseline) a one-stage chain with a
/// rules file is built as the host builds it; frames made from a sample of the set's distinct trace headers are timed
/// with BPF_PROG_TEST_RUN (one call per frame, repeated within the call), every set in each round, in a shuffled order.
/// Rules alternate between drop (even lines) and next (odd), two cheap verdicts, so every frame's verdict is checked
/// against its first matching rule (a linear scan with the plugin's semantics). Then: the time to validate and plan
/// each set and the classifier's memory (the plugin's summary line), single rule add/del latency with the 10k set on a
/// live engine (<see cref="ClassifierUpdates"/>), and forwarding through a RouterLab against an nftables chain
/// holding the same 10k rules (<see cref="ClassifierForwarding"/>).
/// </summary>
/// <param name="quick">Fewer frames, rounds and plans (every set still, 100k included), 20 rule pairs, one short forwarding round.</param>
public sealed partial class ClassifierBench(Sandbox sandbox, Repo repo, bool quick, Action<string> log)
{
    public const int SmallRules = 10;

    private int FramesPerSet => quick ? 1024 : 4096;
    private int Rounds => quick ? 3 : 15;
    private int Repeat => quick ? 50 : 100;
    private int PlanSamples => quick ? 1 : 5;

    private readonly string _work = Path.Combine(sandbox.WorkDirectory, "classifier");

    // One set under measurement: its rules, frames and what each frame must do, and the chain built for it.
    private sealed class Measured(string id, string label, List<ClassBenchRule> rules, string file)
    {
        public string Id { get; } = id;
        public string Label { get; } = label;
        public List<ClassBenchRule> Rules { get; } = rules;
        public string File { get; } = file;
        public List<TraceHeader> Headers { get; } = [];
        public List<byte[]> Frames { get; } = [];
        public List<int> Verdicts { get; } = [];
        public int Portless { get; set; }
        public int Unmatched { get; set; }
        public BuiltChain? Chain { get; set; }
        public List<double> Ns { get; } = [];
        public List<PlannedChain> Plans { get; } = [];
        public int Mismatches { get; set; }
        public long? KernelBytes { get; set; }
    }

    public ClassifierResult Run(CancellationToken cancel)
    {
        if (ClassBench.Locate(repo, out var searched) is not { } directory)
            return new ClassifierResult(null, $"no ClassBench data: none of {string.Join(", ", searched)} holds acl1-1k/10k/100k rules and traces " +
                $"(set ${ClassBench.EnvironmentVariable} to the directory)", [], [], 0, 0, 0, null, null);
        Directory.CreateDirectory(_work);
        var sets = new List<Measured>();
        List<ClassBenchRule>? rules10k = null;
        try
        {
            foreach (var set in ClassBench.Sets(directory))
            {
                cancel.ThrowIfCancellationRequested();
                log($"classifier: reading {set.Label} rules and trace");
                var rules = ClassBench.ReadRules(set.RulesPath);
                var trace = ClassBench.ReadTrace(set.TracePath);
                if (set.Id == "10k")
                    rules10k = rules;
                var measured = Prepare(set.Id, $"{set.Label} ({rules.Count:N0} rules)", rules, trace, seed: rules.Count);
                if (set.Id == "1k")
                    sets.Add(Small(rules, trace, measured.Headers));
                sets.Add(measured);
            }
            // One builder throughout: plugins are loaded (and JIT-compiled) once, as in a running host.
            using (var builder = new ChainBuilder(sandbox))
            {
                Build(builder, sets, cancel);
                VerifyAll(sets);
                Measure(sets, cancel);
                VerifyAll(sets);
                PlanMore(builder, sets, cancel);
            }
            var rows = sets.Select(s => Row(s, sets)).ToList();
            var ratios = new List<ClassifierRatio>
            {
                Ratio(sets, "10k", "1k", 1.5),
                Ratio(sets, "100k", "1k", 2.5),
            };
            foreach (var s in sets)
            {
                s.Chain?.Dispose();
                s.Chain = null;
            }

            var updates = new ClassifierUpdates(sandbox, repo, quick, log).Run(Path.Combine(directory, "acl1-10k.rules"), rules10k!.Count, cancel);
            var forwarding = new ClassifierForwarding(sandbox, repo, quick, log).Run(rules10k, cancel);
            return new ClassifierResult(directory, null, rows, ratios, Rounds, Repeat, PlanSamples, updates, forwarding);
        }
        finally
        {
            foreach (var s in sets)
                s.Chain?.Dispose();
        }
    }

    // A sample of the set's distinct trace headers, each one frame, with the verdict its first matching rule gives.
    private Measured Prepare(string id, string label, List<ClassBenchRule> rules, List<TraceHeader> trace, int seed)
    {
        string file = Path.Combine(_work, $"acl1-{id}.rules");
        ClassBench.WriteRulesFile(file, rules, Action);
        var measured = new Measured(id, label, rules, file);
        var distinct = trace.Distinct().ToArray();
        new Random(seed).Shuffle(distinct);
        foreach (var header in distinct.Take(FramesPerSet))
            Add(measured, header, ClassBench.FirstMatchOfFrame(rules, header));
        return measured;
    }

    // The small-set baseline: the ten rules of the 1k set that the most distinct trace headers hit (in their order), run
    // on the 1k set's frames, so that "above 10 rules" compares the same packets; the frames those ten miss go on (next).
    private Measured Small(List<ClassBenchRule> rules1k, List<TraceHeader> trace, List<TraceHeader> headers)
    {
        var top = trace.Distinct().GroupBy(h => h.Expected).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).Take(SmallRules)
            .Select(g => g.Key).Order().ToList();
        var rules = top.Select((r, i) => rules1k[r] with { Index = i }).ToList();
        string file = Path.Combine(_work, "acl1-1k-top10.rules");
        ClassBench.WriteRulesFile(file, rules, Action);
        var measured = new Measured("10", $"{SmallRules} rules of acl1-1k (those the most distinct trace headers hit), the 1k frames", rules, file);
        foreach (var header in headers)
            Add(measured, header, ClassBench.FirstMatch(rules, header));
        return measured;
    }

    // Even lines drop, odd lines hand the packet on: both cheap, and a wrong rule shows in the verdict half of the time.
    private static string Action(int line) => line % 2 == 0 ? "drop" : "next";

    private static void Add(Measured measured, TraceHeader header, int rule)
    {
        measured.Headers.Add(header);
        measured.Frames.Add(header.Frame());
        measured.Verdicts.Add(rule >= 0 && rule % 2 == 0 ? Expectation.TcActShot : Expectation.TcxNext);
        if (!header.HasPorts)
            measured.Portless++;
        if (rule < 0)
            measured.Unmatched++;
    }

    private static string Stage(string file) => $"""
        - plugin: FiveTuplePolicy
          settings:
            rulesFile: {file}
            defaultAction: next
        """;

    private void Build(ChainBuilder builder, List<Measured> sets, CancellationToken cancel)
    {
        // The first plan JIT-compiles the planning path and the plugin; the plugin keeps its last tree, so warm up with
        // another set than the first one measured.
        builder.Plan("classifier-warm-up", repo.PluginsDirectory, [Stage(sets.Single(s => s.Id == "10").File)]);
        foreach (var s in sets.OrderBy(s => s.Id == "10")) // the small set last: the warm-up planned it
        {
            cancel.ThrowIfCancellationRequested();
            log($"classifier: building FiveTuplePolicy with {s.Label}");
            s.Chain = builder.Build($"classifier-{s.Id}", repo.PluginsDirectory, [Stage(s.File)]);
            s.KernelBytes = Memlock(s.Chain.Chain.StageMaps.Values);
            log($"classifier: {s.Label}: plan {s.Chain.Plan.TotalMilliseconds:F0} ms, compile {s.Chain.Compile.TotalMilliseconds:F0} ms, " +
                $"load + write {(s.Chain.Load + s.Chain.WriteEntries).TotalMilliseconds:F0} ms; {s.Chain.Summaries[0]}");
        }
    }

    // Every frame once through its set's chain: the verdict must be its first matching rule's action.
    private void VerifyAll(List<Measured> sets)
    {
        foreach (var s in sets)
        {
            int mismatches = 0;
            string? first = null;
            for (int i = 0; i < s.Frames.Count; i++)
            {
                int got = s.Chain!.Chain.Entry.TestRun(s.Frames[i]).ReturnValue;
                if (got != s.Verdicts[i] && mismatches++ == 0)
                    first = $"frame {i}: expected {s.Verdicts[i]}, got {got}";
            }
            s.Mismatches = Math.Max(s.Mismatches, mismatches);
            if (mismatches > 0)
                log($"classifier: {s.Label}: {mismatches} of {s.Frames.Count} frames got another verdict than their first matching rule's ({first})");
        }
    }

    private void Measure(List<Measured> sets, CancellationToken cancel)
    {
        var order = new Random(12);
        var inTurn = sets.ToArray();
        for (int round = 0; round < Rounds; round++)
        {
            log($"classifier: per-packet round {round + 1}/{Rounds}: {sets.Count} sets × {FramesPerSet:N0} frames × {Repeat} repeats");
            order.Shuffle(inTurn);
            foreach (var s in inTurn)
                s.Ns.Add(TestRunTimer.PerFrame(s.Chain!.Chain.Entry, s.Frames, Repeat, order, cancel));
        }
    }

    // Plans alone, the sets in turn: the plugin keeps its last two rules files parsed, with their trees, which the sets in turn evict, so each plan reads and builds again.
    private void PlanMore(ChainBuilder builder, List<Measured> sets, CancellationToken cancel)
    {
        for (int i = 0; i < PlanSamples; i++)
            foreach (var s in sets)
            {
                cancel.ThrowIfCancellationRequested();
                log($"classifier: planning {s.Label} ({i + 1}/{PlanSamples})");
                // The 100k plan leaves some 300 MiB of garbage: collected here, not in the next set's plan.
                GC.Collect();
                GC.WaitForPendingFinalizers();
                s.Plans.Add(builder.Plan($"classifier-plan-{s.Id}", repo.PluginsDirectory, [Stage(s.File)]));
            }
    }

    private ClassifierSetRow Row(Measured s, List<Measured> sets)
    {
        var small = sets.Single(x => x.Id == "10");
        var plans = s.Plans.OrderBy(p => p.Elapsed).ToList();
        var median = plans[plans.Count / 2];
        string? summary = s.Chain!.Summaries.FirstOrDefault();
        return new ClassifierSetRow(s.Id, s.Label, s.Rules.Count, s.Frames.Count, s.Portless, Summary.Of(s.Ns),
            s == small ? null : Summary.Of(s.Ns.Zip(small.Ns, (a, b) => a - b).ToList()),
            Summary.Of(s.Plans.Select(p => p.Elapsed.TotalMilliseconds).ToList()), s.Chain.Compile.TotalMilliseconds,
            (s.Chain.Load + s.Chain.WriteEntries).TotalMilliseconds, median.AllocatedBytes / 1048576.0,
            Mib(summary, TablesPattern()), Mib(summary, ReservedPattern()), summary, s.Mismatches)
        {
            KernelMiB = s.KernelBytes / 1048576.0,
            Unmatched = s.Unmatched,
        };
    }

    private static ClassifierRatio Ratio(List<Measured> sets, string id, string baseline, double goal)
    {
        var a = sets.Single(s => s.Id == id);
        var b = sets.Single(s => s.Id == baseline);
        return new ClassifierRatio($"{id}-over-{baseline}", $"{id} / {baseline} rules", Summary.Of(a.Ns.Zip(b.Ns, (x, y) => x / y).ToList()), goal, AtMost: true);
    }

    // What the kernel charges for the stage's maps (both banks, the hit counters, the bank selector): bpftool's bytes_memlock.
    private static long? Memlock(IEnumerable<PluginHost.Kernel.BpfMap> maps)
    {
        long total = 0;
        foreach (var map in maps)
        {
            try
            {
                var psi = new System.Diagnostics.ProcessStartInfo("bpftool", ["-j", "map", "show", "id", map.Info.Id.ToString(CultureInfo.InvariantCulture)])
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                };
                using var bpftool = System.Diagnostics.Process.Start(psi)!;
                string json = bpftool.StandardOutput.ReadToEnd();
                bpftool.WaitForExit();
                using var doc = System.Text.Json.JsonDocument.Parse(json);
                if (!doc.RootElement.TryGetProperty("bytes_memlock", out var memlock))
                    return null;
                total += memlock.GetInt64();
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or System.Text.Json.JsonException or InvalidOperationException)
            {
                return null;
            }
        }
        return total;
    }

    // "... 1.1 MiB of tables, 2.3 MiB reserved (two copies)" in the plugin's summary line.
    private static double? Mib(string? summary, Regex pattern) =>
        summary is not null && pattern.Match(summary) is { Success: true } m
            ? double.Parse(m.Groups[1].Value.Replace(",", ""), CultureInfo.InvariantCulture)
            : null;

    [GeneratedRegex(@"([\d.,]+) MiB of tables")]
    private static partial Regex TablesPattern();

    [GeneratedRegex(@"([\d.,]+) MiB reserved")]
    private static partial Regex ReservedPattern();
}
