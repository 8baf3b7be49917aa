using PluginHost.Bench.Measure;
using PluginHost.Bench.Packets;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;
using PluginHost.Compile;
using PluginHost.Kernel;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 1 of issue 5: ns per packet in the kernel for the floor, the hand-written router, chains of
/// 1, 2, 4 and 8 SourcePolicy stages, and each plugin alone, on 64 and 1500-byte IPv4 and 64-byte IPv6.
/// Every program is loaded first; then each round measures every (program, frame) pair once, in a
/// shuffled order, so drift on the shared VM lands on all of them alike.
/// </summary>
public sealed class PerPacketBench(Sandbox sandbox, Repo repo, Sampling sampling, Action<string> log)
{
    public static readonly IReadOnlyList<int> ChainLengths = [1, 2, 4, 8];

    public PerPacketResult Run(CancellationToken cancel)
    {
        var subjects = new List<Subject>();
        try
        {
            Load(subjects, cancel);
            var frames = FrameShape.All.ToDictionary(s => s.Id, s => s.Build(PolicyRoutes.Source, PolicyRoutes.Destination));
            VerifyAll(subjects, frames);
            var result = Measure(subjects, frames, cancel);
            VerifyAll(subjects, frames); // still the same path: nothing (an emptied prog array, say) changed under the measurement
            return result;
        }
        finally
        {
            foreach (var subject in subjects)
                subject.Dispose();
        }
    }

    private void Load(List<Subject> subjects, CancellationToken cancel)
    {
        var compiler = new ClangCompiler(sandbox.CacheDirectory);
        using var builder = new ChainBuilder(sandbox);
        int out1 = sandbox.Ifindex(Sandbox.Out1);
        Expectation ChainHit(FrameShape s) => s.Ipv6 ? Expectation.Pass : new Expectation(Expectation.TcActRedirect, out1);
        Expectation RouterHit(FrameShape s) => s.Ipv6 ? Expectation.Pass : new Expectation(Expectation.TcActRedirect);

        // The baselines and the chains the targets compare are loaded Placements times each, measured in turn.
        Subject Placed(Subject subject, Func<(BpfProgram Program, IDisposable? Owner)> load)
        {
            for (int i = 1; i < sampling.Placements; i++)
            {
                var (program, owner) = load();
                subject.AddCopy(program, owner);
            }
            return subject;
        }

        log($"loading bench/handwritten/pass.bpf.c and router.bpf.c ({sampling.Placements}× each)");
        subjects.Add(Placed(new Subject("trivial", "trivial program (returns TCX_NEXT)", "baseline",
            Handwritten.LoadPass(repo, compiler), _ => Expectation.Pass), () => (Handwritten.LoadPass(repo, compiler), null)));
        subjects.Add(Placed(new Subject("handwritten", $"hand-written router ({Handwritten.RouterStages} LPM tries, hit in the last)", "baseline",
            Handwritten.LoadRouter(repo, compiler, sandbox), RouterHit), () => (Handwritten.LoadRouter(repo, compiler, sandbox), null)));

        foreach (int n in ChainLengths)
        {
            cancel.ThrowIfCancellationRequested();
            log($"building the {n}-stage SourcePolicy chain ({sampling.Placements}×)");
            BuiltChain Build() => builder.Build($"chain{n}", repo.PluginsDirectory, PolicyRoutes.Chain(n).Select(PolicyRoutes.StageYaml));
            var built = Build();
            subjects.Add(Placed(new Subject($"chain-{n}", $"chain, {n} SourcePolicy stage{(n == 1 ? "" : "s")} (hit in the last)", "chain",
                built.Chain.Entry, ChainHit, built), () =>
                {
                    var copy = Build();
                    return (copy.Chain.Entry, copy);
                }));
        }

        log("building the four plugins in one chain");
        var toOut1 = new Expectation(Expectation.TcActRedirect, out1);
        var mixed = builder.Build("mixed", repo.PluginsDirectory,
            [OtherPlugins.FiveTupleMissStage, OtherPlugins.LoadBalancerStage(hit: false), OtherPlugins.Ipv6Stage, PolicyRoutes.StageYaml(PolicyRoutes.Stage(0, last: true))]);
        subjects.Add(new Subject("mixed-4", "the four plugins: FiveTuplePolicy → LoadBalancer → IPv6 → SourcePolicy (IPv4 hit in the last, IPv6 in the third)",
            "chain", mixed.Chain.Entry, _ => toOut1, mixed));

        log("building SourcePolicy (miss) and MarkPolicy v1 alone");
        var miss = builder.Build("sourcepolicy-miss", repo.PluginsDirectory, [PolicyRoutes.StageYaml(PolicyRoutes.Stage(0, last: false))]);
        subjects.Add(new Subject("sourcepolicy-miss", "SourcePolicy alone, miss (3 routes)", "plugin", miss.Chain.Entry, _ => Expectation.Pass, miss));
        var mark = builder.Build("markpolicy", repo.MarkPolicyDirectory, ["- plugin: MarkPolicy\n"]);
        subjects.Add(new Subject("markpolicy", "MarkPolicy v1 alone (per-source LRU hash)", "plugin", mark.Chain.Entry, _ => Expectation.Pass, mark));

        log("building IPv6, FiveTuplePolicy and LoadBalancer alone");
        var ipv6 = builder.Build("ipv6", repo.PluginsDirectory, [OtherPlugins.Ipv6Stage]);
        subjects.Add(new Subject("ipv6", "IPv6 alone (IPv6 LPM, hit)", "plugin", ipv6.Chain.Entry, s => s.Ipv6 ? toOut1 : Expectation.Pass, ipv6));
        var rules = builder.Build("fivetuple", repo.PluginsDirectory, [OtherPlugins.FiveTupleStage]);
        subjects.Add(new Subject("fivetuple", "FiveTuplePolicy alone (4 rules, the last matches)", "plugin", rules.Chain.Entry,
            s => s.Ipv6 ? Expectation.Pass : toOut1, rules));
        var balancer = builder.Build("loadbalancer", repo.PluginsDirectory, [OtherPlugins.LoadBalancerStage(hit: true)]);
        subjects.Add(new Subject("loadbalancer", "LoadBalancer alone (IPv4 service over 2 next hops, an established flow; section 8 has new flows)", "plugin", balancer.Chain.Entry,
            s => s.Ipv6 ? Expectation.Pass : new Expectation(Expectation.TcActRedirect), balancer));
    }

    private static void VerifyAll(List<Subject> subjects, Dictionary<string, byte[]> frames)
    {
        foreach (var subject in subjects)
            foreach (var shape in FrameShape.All)
                subject.Verify(shape, frames[shape.Id]);
    }

    private PerPacketResult Measure(List<Subject> subjects, Dictionary<string, byte[]> frames, CancellationToken cancel)
    {
        var pairs = subjects.SelectMany(s => FrameShape.All.Select(f => (Subject: s, Shape: f))).ToArray();
        var samples = pairs.ToDictionary(p => (p.Subject.Id, p.Shape.Id), _ => new List<double>());
        var order = new Random(5);
        for (int round = 0; round < sampling.Samples; round++)
        {
            log($"per-packet round {round + 1}/{sampling.Samples}: {pairs.Length} programs × frames, {sampling.PacketsPerSample:N0} packets each");
            order.Shuffle(pairs);
            foreach (var (subject, shape) in pairs)
                samples[(subject.Id, shape.Id)].Add(TestRunTimer.Repeated(subject.ProgramFor(round), frames[shape.Id], sampling.CallsPerSample, sampling.Repeat, cancel));
        }

        var rows = subjects.Select(s => new PerPacketRow(s.Id, s.Label, s.Group,
            FrameShape.All.ToDictionary(f => f.Id, f => Summary.Of(samples[(s.Id, f.Id)])),
            FrameShape.All.ToDictionary(f => f.Id, f => s.Expect(f).Verdict))).ToList();
        // SourcePolicy alone with a hit is the 1-stage chain: shown again among the plugins, not measured twice.
        var chain1 = rows.Single(r => r.Id == "chain-1");
        rows.Insert(rows.FindIndex(r => r.Group == "plugin"), chain1 with { Id = "sourcepolicy-hit", Label = "SourcePolicy alone, hit (= chain, 1 stage)", Group = "plugin" });

        return new PerPacketResult(FrameShape.All.Select(f => f.Id).ToList(), FrameShape.All.ToDictionary(f => f.Id, f => f.Label), rows,
            Derive(samples));
    }

    // Differences and ratios from samples of the same round (paired), then the median: steadier than
    // combining medians when the VM's speed drifts between rounds.
    private List<DerivedRow> Derive(Dictionary<(string, string), List<double>> samples)
    {
        Summary Paired(string a, string b, string shape, Func<double, double, double> combine) =>
            Summary.Of(samples[(a, shape)].Zip(samples[(b, shape)], combine).ToList());

        var derived = new List<DerivedRow>();
        foreach (int n in ChainLengths.Where(n => n > 1))
            derived.Add(new DerivedRow($"per-tail-call-{n}", $"ns per added stage (tail call), (chain-{n} − chain-1) / {n - 1}", "ns",
                FrameShape.All.ToDictionary(f => f.Id, f => Paired($"chain-{n}", "chain-1", f.Id, (x, y) => (x - y) / (n - 1)))));
        derived.Add(new DerivedRow("chain4-minus-handwritten", "chain-4 − hand-written", "ns",
            FrameShape.All.ToDictionary(f => f.Id, f => Paired("chain-4", "handwritten", f.Id, (x, y) => x - y))));
        derived.Add(new DerivedRow("chain4-over-handwritten", "chain-4 / hand-written", "×",
            FrameShape.All.ToDictionary(f => f.Id, f => Paired("chain-4", "handwritten", f.Id, (x, y) => x / y)), Target: 1.10));
        derived.Add(new DerivedRow("chain1-minus-trivial", "chain-1 − trivial (entry, parse, one stage)", "ns",
            FrameShape.All.ToDictionary(f => f.Id, f => Paired("chain-1", "trivial", f.Id, (x, y) => x - y))));
        return derived;
    }
}
