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
        if (r.Forwarding is { } forwarding)
            Forwarding(md, forwarding);
        if (r.Reload is { } reload)
            Reload(md, reload);
        if (r.ControlPlane is { } controlPlane)
            ControlPlane(md, controlPlane);
        if (r.Footprint is { } footprint)
            Footprint(md, footprint);
        if (r.Classifier is { } classifier)
            Classifier(md, classifier, r);
        if (r.LoadBalancer is { } loadBalancer)
            LoadBalancer(md, loadBalancer, r);
        return md.ToString();
    }

    private static void LoadBalancer(StringBuilder md, LoadBalancerResult lb, BenchReport r)
    {
        md.AppendLine("## 8. LoadBalancer (issue 13)").AppendLine();
        string quick = r.Mode == "quick" ? " --quick" : "";
        md.AppendLine($"Reproduce this section alone: `bench/run{quick} --only loadbalancer` (`--json` for the samples). CPU: {r.Machine.Cpu}.").AppendLine();
        md.AppendLine("**Per packet.** One LoadBalancer stage alone (a 1-stage chain) with two services, 198.18.9.0/24 and 2001:db8:9::/48, each over " +
            "two next hops (4,093-entry Maglev tables, flow table 524,288), 64-byte UDP frames; beside SourcePolicy alone (IPv4, a hit: the per-packet " +
            $"section's 1-stage chain) and IPv6 alone (IPv6, a hit), measured in the same rounds. *Established*: one frame, {lb.Calls} calls × {lb.Repeat} " +
            "repeats (after its first packet the flow is in the table). BPF_PROG_TEST_RUN repeats one buffer, so a new flow cannot be repeated: each " +
            $"round sends {lb.Frames:N0} fresh flows per family (a source address each) one call per frame — new flows — and then the same frames " +
            "again — established —; their difference, paired per round, is the *new-flow penalty* (flow-table miss, hash, ring lookup, LRU insert, " +
            $"new-flow count), and *new flow* = established + penalty. Median of {lb.Rounds} rounds, the blocks of a round in a shuffled order, " +
            "± half the interquartile range; ratios paired per round.").AppendLine();
        md.AppendLine("| per packet | IPv4 64 B | IPv6 64 B |");
        md.AppendLine("| --- | ---: | ---: |");
        foreach (var row in lb.PerPacket)
            md.AppendLine(row.Unit == "×" ? $"| {row.Label} | {Ratio(row.Ipv4)} | {Ratio(row.Ipv6)} |" : $"| {row.Label} | {Ns(row.Ipv4)} ns | {Ns(row.Ipv6)} ns |");
        md.AppendLine();
        md.AppendLine("**Table changes.** *Build*: `MaglevTable.Build` alone (the plugin's C# source compiled into the harness), ms per table, median. " +
            "*Backend change*: a live HostEngine (in process, a veth, tcx ingress) runs one service with a 65,537-entry table over 16 named backends; " +
            "each command goes through `HostEngine.RunCommand` as the API and the CLI run it (validate the stage, rebuild the table, write the entries " +
            "that changed into the idle bank, flip), wall time per command, after 20 unmeasured pairs that warm the command path up.").AppendLine();
        md.AppendLine("| operation | runs | p50 | p99 | engine's own p50 | entries rewritten (median) | applied as |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var row in lb.Builds)
            md.AppendLine($"| {row.Label} | {row.Runs} | {Ms(row.Ms.Median)} ms | {Ms(row.Ms.NearestRank(99))} ms | | | |");
        foreach (var row in lb.Changes)
            md.AppendLine($"| {row.Label} | {row.Operations} | {Ms(row.Ms.Median)} ms | {Ms(row.P99Ms)} ms | {Ms(row.HostMs.Median)} ms | {row.EntriesChanged:N0} | {row.Applied} |");
        md.AppendLine();
    }

    private static void Classifier(StringBuilder md, ClassifierResult c, BenchReport r)
    {
        md.AppendLine("## 7. Packet classifier (FiveTuplePolicy on ClassBench)").AppendLine();
        string quick = r.Mode == "quick" ? " --quick" : "";
        md.AppendLine($"Reproduce this section alone: `bench/run{quick} --only classifier` (as root, in the repository; " +
            $"{(r.Mode == "quick" ? "the full run drops `--quick`" : "`--quick` for a short run")}). CPU: {r.Machine.Cpu} ({r.Machine.Cpus} CPUs); " +
            $"section run in {c.Seconds:F0} s. ClassBench data: {(c.DataDirectory is null ? "not found" : $"`{c.DataDirectory}`")} " +
            $"(`${{PLUGINHOST_CLASSBENCH}}`, else `../shared/data/classbench` beside the repository, else `/work/shared/data/classbench`).").AppendLine();
        if (c.Missing is not null)
        {
            md.AppendLine($"**Not measured**: {c.Missing}.").AppendLine();
            return;
        }
        var small = c.Sets.FirstOrDefault(s => s.Id == "10");
        md.AppendLine("**Per-packet cost.** One FiveTuplePolicy stage (a 1-stage chain: entry program, parser, the tree walk and the leaf's rules) " +
            "built as the host builds it, with a rules file per set; even lines `drop`, odd lines `next` (two cheap verdicts). Frames: a sample of " +
            "each set's distinct trace headers, 64-byte IPv4, ports in a TCP, UDP or SCTP header, no transport header for other protocols " +
            "(*portless*: the plugin then skips rules with ports, so their first match can differ from the trace's). Every frame's verdict is " +
            "checked against its first matching rule (a linear scan) before and after timing. BPF_PROG_TEST_RUN, one call per frame with " +
            $"{c.Repeat} repeats (each header's own path, caches warm), the mean over the frames; median of {c.Rounds} rounds, each timing every " +
            "set in a shuffled order, ± half the interquartile range; *above 10 rules* and the ratios are paired per round. " +
            $"*Validate + plan*: `PipelinePlanner.Plan` as `pluginhost validate` runs it (read the rules file, build the tree, encode the entries), " +
            $"median of {c.PlanSamples}, the sets in turn (the plugin keeps its last two rules files parsed, with their trees; the sets in turn evict them, so each plan reads and builds again); *allocated*: managed " +
            "memory allocated by that plan; *compile*, *load + write*: building the chain once. *Tables* and *reserved* are the plugin's own " +
            "figures from its summary line (below): the classifier's tables, and what its double-buffered maps reserve; *kernel*: what the kernel charges " +
            "for the stage's maps (bpftool's memlock: both banks, the hit counters, the bank selector).").AppendLine();
        md.AppendLine("| rule set | rules | frames (portless) | ns per packet | above 10 rules | validate + plan | allocated | compile | load + write | tables | reserved | kernel | verdicts |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        foreach (var row in c.Sets)
        {
            md.AppendLine($"| {row.Label} | {row.Rules:N0} | {row.Frames:N0} ({row.Portless:N0}){(row.Unmatched > 0 ? $", {row.Unmatched:N0} matching no rule" : "")} | {Ns(row.Ns)} | {(row.AboveSmall is { } a ? Ns(a) : "–")} | " +
                $"{Ms(row.PlanMs.Median)} ms | {row.AllocatedMiB:F1} MiB | {Ms(row.CompileMs)} ms | {Ms(row.LoadWriteMs)} ms | {Mib(row.TablesMiB)} | {Mib(row.ReservedMiB)} | {Kernel(row.KernelMiB)} | " +
                $"{(row.Mismatches == 0 ? "all right" : $"**{row.Mismatches:N0} wrong**")} |");
        }
        md.AppendLine();
        md.AppendLine("| per-packet growth | ratio | goal |");
        md.AppendLine("| --- | ---: | --- |");
        foreach (var ratio in c.Ratios)
            md.AppendLine($"| {ratio.Label} | {Ratio(ratio.Value)} | {Goal(ratio)} |");
        md.AppendLine();
        md.AppendLine("The plugin's summary line for each set (`pluginhost validate` prints it):").AppendLine();
        foreach (var row in c.Sets)
            md.AppendLine($"- {row.Label}: {row.StageSummary ?? "(none)"}");
        md.AppendLine();

        if (c.Updates is { } u)
        {
            md.AppendLine($"**Single rule add/del with {u.Rules:N0} rules loaded.** A live HostEngine (in process; private plugins directory, BPF root and " +
                $"runtime directory) runs one FiveTuplePolicy stage with the acl1-10k rules file (`defaultAction: next`) on a veth, tcx ingress " +
                $"(attached in {u.AttachMs:F0} ms). Each pair is `{u.Rule}` through `HostEngine.RunCommand` (what the API and the CLI call); " +
                $"wall time per operation, p99 the nearest rank, measured after {Scenarios.ClassifierUpdates.WarmUpPairs} pairs that warm the command path up " +
                $"(JIT, then the runtime's optimized recompile of hot code), as in a host that has served commands. *Spaced*: {u.SpacingMs:0} ms between operations, an operator's pace (a double-buffered " +
                "change waits for an RCU grace period only when the previous flip was less than one ago); *back to back*: the next operation starts " +
                "when the last returns. *Entries rewritten*: map entries the change rewrote for packets (the engine's count)." +
                (c.Sets.FirstOrDefault(s => s.Id == "10k") is { } set10k
                    ? $" A change validates and plans the whole stage again: for comparison, validating and planning the 10k set alone takes " +
                      $"{Ms(set10k.PlanMs.Median)} ms (table above)."
                    : "")).AppendLine();
            md.AppendLine("| operation | runs | p50 | p99 | engine's own p50 | entries rewritten (median) | applied as | goal |");
            md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |");
            foreach (var row in u.Rows)
                md.AppendLine($"| {row.Label} | {row.Operations} | {Ms(row.Ms.Median)} ms | {Ms(row.P99Ms)} ms | {Ms(row.HostMs.Median)} ms | {row.EntriesChanged:N0} | " +
                    $"{row.Applied} | {(row.GoalP99Ms is double g ? $"p99 < {g:0} ms: {Verdict(row.P99Ms < g)}" : "")} |");
            md.AppendLine();
        }

        if (c.Forwarding is { } f)
        {
            md.AppendLine($"**Forwarding throughput.** Real frames through a private RouterLab, as in section 3: `bench/traffic/rawsend.c` sends one " +
                $"{f.WireBytes}-byte UDP frame, {f.Header}, for {f.Seconds:0.#} s from the client's lan0" + (f.OneCpu ? " (pinned to one CPU)" : "") +
                $"; the router routes its destination to up1 and the server blackholes it. The acl1-10k set matches it first at rule {f.MatchLine:N0} " +
                $"(0-based: {f.MatchLine:N0} rules before it miss it; the deepest line that matches a forwardable UDP header first, the catch-all excepted). " +
                "(a) FiveTuplePolicy (tcx on the router's lan0, ingress) with the 10k set, that rule `redirect up1 198.18.2.2` and every other " +
                $"`next`; (b) FiveTuplePolicy with {SmallRules(f)} rules: nine of the set's first rules that miss the frame, then that rule; (c) the kernel " +
                $"with the same {f.Rules:N0} rules in one nftables chain on the router's forward hook (`ip protocol P ip saddr S ip daddr D th sport A-B " +
                "th dport C-D accept`, the first match ends the walk as in the plugin; loaded with `nft -f` in " +
                $"{f.NftLoadMs / 1000:F1} s, on the hook only while measured); (d) the kernel alone. *Received*: what the server's up1 counted, in Mpps; " +
                $"median of {f.Rounds} round{(f.Rounds == 1 ? "" : "s")}, each running every configuration in turn (the order rotates), ± half the " +
                "interquartile range; ratios paired per round. (a) and (b) are checked to have redirected what arrived, (c) to have counted it at the " +
                $"matching rule. Attaching (a) (validate, plan, compile, load, write, canaries): {f.AttachMs:F0} ms.").AppendLine();
            md.AppendLine("| configuration | received (Mpps) | sent (Mpps) |");
            md.AppendLine("| --- | ---: | ---: |");
            foreach (var row in f.Rows)
                md.AppendLine($"| {row.Label} | {Mpps(row.ReceivedMpps)} | {row.SentMpps.Median:F3} |");
            md.AppendLine();
            md.AppendLine("| throughput ratio | ratio | goal |");
            md.AppendLine("| --- | ---: | --- |");
            foreach (var ratio in f.Ratios)
                md.AppendLine($"| {ratio.Label} | {Ratio(ratio.Value)} | {(ratio.Goal > 0 ? Goal(ratio) : "")} |");
            md.AppendLine();
        }
    }

    private static int SmallRules(ClassifierForwardingResult f) => Math.Min(f.MatchLine + 1, 10);

    private static string Goal(ClassifierRatio ratio) =>
        $"{(ratio.AtMost ? "≤" : "≥")} {ratio.Goal.ToString("0.0#", Invariant)}×: {Verdict(ratio.Met)}";

    private static string Kernel(double? mib) => mib switch
    {
        null => "–",
        < 1 => $"{(mib.Value * 1024).ToString("F0", Invariant)} KiB",
        double v => $"{v.ToString("F1", Invariant)} MiB",
    };

    private static string Mib(double? mib) => mib switch
    {
        null => "–",
        < 0.05 => "< 0.1 MiB", // the plugin's summary has one decimal
        double v => $"{v.ToString("F1", Invariant)} MiB",
    };

    private static void PerPacket(StringBuilder md, PerPacketResult p, BenchReport r)
    {
        var s = r.Sampling;
        md.AppendLine("## 1. Per-packet cost").AppendLine();
        md.AppendLine($"ns per packet as the kernel times it (BPF_PROG_TEST_RUN): median of {s.Samples} rounds of " +
            $"{s.CallsPerSample} calls × {s.Repeat} repeats ({s.PacketsPerSample:N0} packets) per cell, ± half the interquartile range; " +
            "each round runs every program on every frame in a shuffled order" +
            (s.Placements > 1 ? $"; the baselines and the SourcePolicy chains are loaded {s.Placements} times each and the rounds rotate over the loads " +
                "(where the JIT places a program moves its cost by a few percent from load to load)" : "") +
            ". IPv4 frames come from a source that misses every " +
            "stage but the last, whose route forwards them (bpf_redirect_neigh, TTL − 1); IPv6 frames match no SourcePolicy stage (an IPv6 stage forwards them where there is one).").AppendLine();
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
            "stage costs a tail call plus that stage's glue (a stage that hands the packet on counts and checks nothing) and its LPM lookup, a miss.").AppendLine();
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
        foreach (var row in l.Rows.Where(r => r.Family == "IPv4"))
            md.AppendLine($"| {row.Prefixes:N0} | {Ms(row.PlanMs)} | {Ms(row.WriteMs)} | {Ns(row.Repeated)} | {Ref(row.Reference?.Repeated)} | " +
                $"{Ns(row.Random)} | {Ref(row.Reference?.Random)} | {Ns(row.RandomPenalty)} |");
        md.AppendLine();
        var v6 = l.Rows.Where(r => r.Family == "IPv6").ToList();
        if (v6.Count > 0)
        {
            md.AppendLine($"The same with the IPv6 plugin (an LPM trie on 128-bit sources) and a routes file of {l.Prefix6Mix}; 64-byte IPv6 " +
                "(no kernel-trie reference: issue 5 probed IPv4 only).").AppendLine();
            md.AppendLine("| IPv6 prefixes | plan | load + write | repeated | random | random-address penalty |");
            md.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (var row in v6)
                md.AppendLine($"| {row.Prefixes:N0} | {Ms(row.PlanMs)} | {Ms(row.WriteMs)} | {Ns(row.Repeated)} | {Ns(row.Random)} | {Ns(row.RandomPenalty)} |");
            md.AppendLine();
        }
    }

    private static void Reload(StringBuilder md, ReloadResult rl)
    {
        md.AppendLine("## 4. Reload").AppendLine();
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
        if (rl.Loss is { } l)
        {
            md.AppendLine($"Packets lost while swapping: a private RouterLab forwards a sequence-numbered UDP stream ({l.PacketsPerSecond:N0} pps, " +
                "client → router → server) through MarkPolicy + SourcePolicy (tcx on the router's lan0) while a HostEngine applies " +
                "MarkPolicy v1 ↔ v2 back to back, each apply a new generation (compile cache warm) swapped in with one " +
                "`BPF_LINK_UPDATE`; old generations retire at once. The receiver checks every sequence number.").AppendLine();
            md.AppendLine("| swaps | generations | in | apply p50 / p99 | sent | received | lost | reordered | duplicates | receive-buffer drops | stage faults | target |");
            md.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
            md.AppendLine($"| {l.Swaps} | {l.Generations} | {l.Seconds:F1} s | {Ms(l.ApplyMs.Median)} / {Ms(l.ApplyMs.NearestRank(99))} ms | {l.Sent:N0} | " +
                $"{l.Received:N0} | {l.Lost:N0} | {l.Reordered:N0} | {l.Duplicates:N0} | {l.ReceiveBufferErrors:N0} | {l.Faults:N0} | " +
                $"0 lost in 100 swaps: {(l.Swaps >= 100 ? Verdict(l.Lost == 0) : $"{(l.Lost == 0 ? "none lost" : "**lost**")} in {l.Swaps} (100 in full mode)")} |");
            md.AppendLine();
            if (l.Flood is { } f)
            {
                md.AppendLine($"The same swaps under a flood: `bench/traffic/rawsend.c` sends one {f.WireBytes}-byte UDP frame as fast as the router " +
                    "forwards it (one CPU) for the whole time the swaps take; *received* is what the server's up1 counted (a few ARP frames " +
                    "included, so it can exceed *sent* by a handful).").AppendLine();
                md.AppendLine("| swaps | swapping | flood | sent | received | rate | lost |");
                md.AppendLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
                md.AppendLine($"| {f.Swaps} | {f.SwapSeconds:F1} s | {f.FloodSeconds:F1} s | {f.Sent:N0} | {f.Received:N0} | {f.Mpps:F3} Mpps | {f.Lost:N0} |");
                md.AppendLine();
            }
        }
    }

    private static void Forwarding(StringBuilder md, ForwardingResult f)
    {
        md.AppendLine("## 3. Forwarding throughput").AppendLine();
        md.AppendLine($"Real frames, client → router → server across network namespaces and veth pairs (a private RouterLab). " +
            $"`bench/traffic/rawsend.c` (compiled at run time) sends one fixed {f.WireBytes}-byte UDP frame (from 198.18.1.10 to 198.18.8.1) " +
            $"for {f.Seconds:0.#} s from the client's lan0 through a raw socket that bypasses the qdisc (sendmmsg, 64 a batch)" +
            (f.OneCpu ? ", pinned to one CPU" : "") + "; a veth hands each frame to the router on the sender's CPU, so the sender's rate is bounded by " +
            "the router's cost (the server drops each frame through a blackhole route, after its up1 counted it: no socket lookup, no ICMP back). *Received*: what the server's up1 counted over the interval, in Mpps; median of " +
            $"{f.Rounds} rounds, each running every configuration in turn (the order rotates round by round), ± half the interquartile " +
            "range; ratios are paired per round. PluginHost: the host's engine attached with tcx on the router's lan0, ingress " +
            "(bpf_redirect_neigh to up1).").AppendLine();
        md.AppendLine("| configuration | received (Mpps) | sent (Mpps) | vs (a) | vs 100 `ip rule`s | target |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | --- |");
        foreach (var row in f.Rows)
        {
            string target = row.Id switch
            {
                "chain-1" => $"≥ 1.05× (a): {Verdict(row.VsKernel.Median >= 1.05)}; ≥ 1.8× 100 rules: {Verdict(row.VsRules100.Median >= 1.8)}",
                "chain-4" => $"≥ 1.0× (a): {Verdict(row.VsKernel.Median >= 1.0)}; ≥ 1.8× 100 rules: {Verdict(row.VsRules100.Median >= 1.8)}",
                _ => "",
            };
            md.AppendLine($"| {row.Label} | {Mpps(row.ReceivedMpps)} | {row.SentMpps.Median:F3} | {Ratio(row.VsKernel)} | {Ratio(row.VsRules100)} | {target} |");
        }
        md.AppendLine();
    }

    private static string Mpps(Summary s) => string.Create(Invariant, $"{s.Median:F3} ±{s.HalfSpread:F3}");

    private static void ControlPlane(StringBuilder md, ControlPlaneResult c)
    {
        md.AppendLine("## 5. Control plane").AppendLine();
        md.AppendLine($"The real host (`pluginhost run`, {c.Pipeline}) driven through its API: one `POST /v1/commands` per " +
            "command on the control socket (a new connection each, as the CLI does), to the first SourcePolicy stage. *Client*: wall time " +
            "from connect to answer; *host*: the host's own figure for the apply (`milliseconds` in the answer). Each add is a new /32, " +
            "each del removes it, both applied to the maps in place; p99 is the nearest rank (the slowest of 20 pairs in `--quick`).").AppendLine();
        md.AppendLine("| single update | pairs | add p50 | add p99 | del p50 | del p99 | host: add p50 | host: del p50 |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        LatencyRow(md, "route add / del, a few routes in place (ms)", c.Single);
        if (c.AfterLoad is { } after && c.Load is { } l)
            LatencyRow(md, $"route add / del with {l.Prefixes:N0} prefixes loaded (ms)", after);
        md.AppendLine();
        if (c.Load is { } load)
        {
            md.AppendLine($"`route load` of a routes file of {load.Prefixes:N0} prefixes (the lookup section's generator and seed: " +
                "random distinct prefixes, /16–/32), through the API: parse, validate, plan, write the trie.").AppendLine();
            md.AppendLine("| load | prefixes | client | host | applied | target |");
            md.AppendLine("| --- | ---: | ---: | ---: | --- | --- |");
            string target = load.TargetSeconds is double t ? $"< {t:0} s: {Verdict(load.Seconds < t)}" : "(1,000,000 in < 3 s: full mode)";
            md.AppendLine($"| route load FILE | {load.Prefixes:N0} | {load.Seconds:F2} s | {load.HostMs / 1000:F2} s | {load.Applied} ({load.EntriesChanged:N0} entries) | {target} |");
            md.AppendLine();
        }
    }

    private static void LatencyRow(StringBuilder md, string label, ControlPlaneLatency l) =>
        md.AppendLine($"| {label} | {l.Pairs} | {Ms(l.AddMs.Median)} | {Ms(l.AddP99Ms)} | {Ms(l.DelMs.Median)} | {Ms(l.DelP99Ms)} | " +
            $"{Ms(l.HostAddMs.Median)} | {Ms(l.HostDelMs.Median)} |");

    private static void Footprint(StringBuilder md, FootprintResult f)
    {
        md.AppendLine("## 6. Host footprint").AppendLine();
        md.AppendLine($"The real host (`pluginhost run`, {f.Pipeline}), idle: no traffic, no commands, {f.IdleSeconds:F1} s from {f.SettleSeconds:0.#} s after " +
            $"its pid file appeared (the host is up: first apply, API, watchers; the settle lets the runtime's tiered JIT finish). *CPU*: utime + stime of all its threads over that window " +
            $"(/proc/PID/stat, {f.TickMs:F0} ms ticks), in % of one CPU; *RSS*: VmRSS at the end (*peak*: VmHWM since start).").AppendLine();
        md.AppendLine("| host | up in | RSS | peak RSS | threads | CPU idle | CPU time idle |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        md.AppendLine($"| 4 plugins, 4 stages, idle | {f.StartMs:F0} ms | {f.RssMiB:F1} MiB | {f.HwmMiB:F1} MiB | {f.Threads} | {f.CpuPercent:F2} % | " +
            $"{f.CpuMs:F0} ms in {f.IdleSeconds:F1} s ({string.Join(" / ", f.CpuMsPerSecond.Select(v => v.ToString("F0", Invariant)))} ms per second) |");
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
