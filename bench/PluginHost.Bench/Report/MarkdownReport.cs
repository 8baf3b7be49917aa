using System.Globalization;
using System.Text;
using PluginHost.Bench.Measure;

namespace PluginHost.Bench.Report;

/// <summary>The report for people: Markdown tables with a header that says when, where and how.</summary>
public static class MarkdownReport
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Render(BenchReport r)
    {
        var md = new StringBuilder();
        var m = r.Machine;
        md.AppendLine("# PluginHost benchmarks").AppendLine();
        md.AppendLine($"{m.Date:yyyy-MM-dd HH:mm} UTC · Linux {m.Kernel} · {m.Cpu} ({m.Cpus} CPUs, {m.MemoryMiB / 1024.0:F0} GiB) · " +
            $"{m.Runtime} · {m.Clang} · {r.Mode} run in {Duration(r.Elapsed)}");
        md.AppendLine().AppendLine($"Reproduce (as root, in the repository): `{r.Command}`").AppendLine();
        if (r.PerPacket is { } perPacket)
            PerPacket(md, perPacket, r);
        if (r.Lookup is { } lookup)
            Lookup(md, lookup, r);
        if (r.Reload is { } reload)
            Reload(md, reload);
        return md.ToString();
    }

    private static void PerPacket(StringBuilder md, PerPacketResult p, BenchReport r)
    {
        var s = r.Sampling;
        md.AppendLine("## 1. Per-packet cost").AppendLine();
        md.AppendLine($"ns per packet as the kernel times it (BPF_PROG_TEST_RUN): median of {s.Samples} rounds of " +
            $"{s.CallsPerSample} calls × {s.Repeat} repeats ({s.PacketsPerSample:N0} packets) per cell, ± half the interquartile range; " +
            "each round runs every program on every frame in a shuffled order. IPv4 frames come from a source that misses every " +
            "stage but the last, whose route forwards them (bpf_redirect_neigh, TTL − 1); IPv6 frames match no stage.").AppendLine();
        md.Append("| program |");
        foreach (var shape in p.Shapes)
            md.Append(' ').Append(p.ShapeLabels[shape]).Append(" |");
        md.AppendLine(" verdict (IPv4 / IPv6) |");
        md.Append("| --- |").Append(string.Concat(p.Shapes.Select(_ => " ---: |"))).AppendLine(" --- |");
        string? group = null;
        foreach (var row in p.Rows)
        {
            if (row.Group != group)
            {
                group = row.Group;
                md.Append("| *").Append(GroupTitle(group)).Append("* |").Append(string.Concat(p.Shapes.Select(_ => " |"))).AppendLine(" |");
            }
            md.Append("| ").Append(row.Label).Append(" |");
            foreach (var shape in p.Shapes)
                md.Append(' ').Append(Ns(row.Ns[shape])).Append(" |");
            md.Append(' ').Append(row.Verdicts[p.Shapes[0]]).Append(" / ").Append(row.Verdicts[p.Shapes[^1]]).AppendLine(" |");
        }
        md.AppendLine();
        md.AppendLine("Derived figures, each the median over rounds of the figure computed from one round's samples (so they can differ " +
            "slightly from the same arithmetic on the medians above). \"ns per added stage\" is the brief's \"ns per tail call\": one more " +
            "stage costs a tail call plus that stage's glue (counters, generation check) and its LPM lookup, a miss.").AppendLine();
        md.Append("| derived |").Append(string.Concat(p.Shapes.Select(sh => $" {p.ShapeLabels[sh]} |"))).AppendLine(" target |");
        md.Append("| --- |").Append(string.Concat(p.Shapes.Select(_ => " ---: |"))).AppendLine(" --- |");
        foreach (var d in p.Derived)
        {
            md.Append("| ").Append(d.Label).Append(" |");
            foreach (var shape in p.Shapes)
                md.Append(' ').Append(d.Unit == "×" ? Ratio(d.Values[shape]) : Ns(d.Values[shape])).Append(" |");
            md.AppendLine(d.Target is double t ? $" ≤ {t.ToString("F2", Invariant)}× (IPv4): {Verdict(d.Values[p.Shapes[0]].Median <= t && d.Values[p.Shapes[1]].Median <= t)} |" : " |");
        }
        md.AppendLine();
    }

    private static void Lookup(StringBuilder md, LookupResult l, BenchReport r)
    {
        var s = r.Sampling;
        md.AppendLine("## 2. Lookup scaling").AppendLine();
        md.AppendLine($"One SourcePolicy stage (entry program, one tail call, one LPM lookup that hits, redirect) with a routes file of " +
            $"{l.PrefixMix}; 64-byte IPv4; ns per packet, median of {s.Samples} rounds. *Repeated*: one source address, " +
            $"{s.CallsPerSample} calls × {s.Repeat} repeats. *Random*: BPF_PROG_TEST_RUN repeats one buffer, so random addresses take " +
            $"{l.RandomFrames:N0} distinct frames (sources drawn inside the table's prefixes), one call each with repeat = {l.RandomRepeat}, " +
            "in a shuffled order. A one-packet call also times the timer and a cold start, so the same frame is run the same way, alternating call by " +
            "call, and subtracted: *penalty* = random frames − same frame (one per call), *random* = repeated + penalty, paired per round " +
            "(the raw one-per-call figures are in `--json`). *Kernel trie*: the kernel's LPM trie probed in C by issue 5 (a bare lookup, " +
            "no chain around it). *Plan*: parse and validate the routes file, encode the entries; *load + write*: load the chain and " +
            "write the entries (ms).").AppendLine();
        md.AppendLine("| prefixes | plan | load + write | repeated: ours | repeated: kernel trie | random: ours | random: kernel trie | random-address penalty |");
        md.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var row in l.Rows)
            md.AppendLine($"| {row.Prefixes:N0} | {Ms(row.PlanMs)} | {Ms(row.WriteMs)} | {Ns(row.Repeated)} | {Ref(row.Reference?.Repeated)} | " +
                $"{Ns(row.Random)} | {Ref(row.Reference?.Random)} | {Ns(row.RandomPenalty)} |");
        md.AppendLine();
    }

    private static void Reload(StringBuilder md, ReloadResult rl)
    {
        md.AppendLine("## 4. Reload (timings)").AppendLine();
        md.AppendLine($"A real HostEngine with a private BPF root ({rl.Pipeline}); first attach {rl.AttachMs:F1} ms. " +
            "Medians in ms. *Whole apply*: `HostEngine.Apply()` as the host runs it; *plugins, validate*: its part before the " +
            "deployer (load the plugins into a fresh load context, validate, plan; whole apply − render → swap, per run); " +
            "*render → swap*: the deployer's part (compose, compile, load, canary, tcx link update, bookkeeping), of which the " +
            "phases follow.").AppendLine();
        md.AppendLine("| change | runs | whole apply | plugins, validate | render → swap | compose | compile | load | canary | swap | target |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var row in rl.Rows)
        {
            string target = row.TargetMs is double t
                ? $"< {t:0} ms: render → swap {Verdict(row.DeployMs.Median < t)}, whole apply {Verdict(row.ApplyMs.Median < t)}"
                : "";
            md.AppendLine($"| {row.Label} | {row.Runs} | {Ms(row.ApplyMs.Median)} | {Ms(row.HostMs.Median)} | {Ms(row.DeployMs.Median)} | {Ms(row.ComposeMs.Median)} | " +
                $"{Ms(row.CompileMs.Median)} | {Ms(row.LoadMs.Median)} | {Ms(row.CanaryMs.Median)} | {Ms(row.SwapMs.Median)} | {target} |");
        }
        md.AppendLine();
    }

    private static string Duration(TimeSpan t) => t.TotalSeconds < 120 ? $"{t.TotalSeconds:F0} s" : $"{t.TotalMinutes:F1} min";

    private static string GroupTitle(string group) => group switch
    {
        "baseline" => "baselines",
        "chain" => "composed chain",
        "plugin" => "each plugin alone (a 1-stage chain)",
        _ => group,
    };

    private static string Ns(Summary s) => string.Create(Invariant, $"{s.Median:F1} ±{s.HalfSpread:F1}");

    private static string Ratio(Summary s) => string.Create(Invariant, $"{s.Median:F2}× ±{s.HalfSpread:F2}");

    private static string Ms(double ms) => ms == 0 ? "–" : ms < 10 ? ms.ToString("F2", Invariant) : ms.ToString("F0", Invariant);

    private static string Ref(double? ns) => ns is double v ? v.ToString("N0", Invariant) : "–";

    private static string Verdict(bool met) => met ? "**met**" : "**missed**";
}
