using System.Net;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Packets;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 2 of issue 5: a one-stage SourcePolicy chain (64-byte IPv4, every lookup a hit) with 10 to
/// 1,000,000 prefixes from a routes file, and the same with the IPv6 plugin (64-byte IPv6), once with one source address repeated and once with random
/// source addresses, beside the kernel LPM-trie figures the issue measured in C.
/// BPF_PROG_TEST_RUN repeats one buffer, so random addresses need many distinct frames, one call each
/// (repeat = <see cref="Sampling.RandomRepeat"/>, 1: every lookup of a new address). A one-packet timed
/// loop also carries the timer and a cold start, so the same frame is run the same way, alternating call
/// by call, and subtracted: random = repeated + (random frames − same frame), paired per round.
/// </summary>
public sealed class LookupBench(Sandbox sandbox, Repo repo, Sampling sampling, Action<string> log)
{
    public static readonly IReadOnlyDictionary<int, TrieReference> IssueReference = new Dictionary<int, TrieReference>
    {
        [10] = new(43, 52),
        [1_000] = new(86, 103),
        [100_000] = new(129, 487),
        [1_000_000] = new(134, 1_195),
    };

    private static readonly IPAddress Via = IPAddress.Parse("198.18.2.2");

    // One family's table: its generator, routes-file stage, frames and label.
    private sealed record Family(string Name, string Plugin, Func<int, IRouteTable> Generate, IPAddress? Via, Func<string, string> Stage,
        Func<IPAddress, byte[]> Frame, FrameShape Shape, IReadOnlyDictionary<int, TrieReference> Reference);

    public LookupResult Run(CancellationToken cancel)
    {
        using var builder = new ChainBuilder(sandbox);
        // The first build JIT-compiles the planning path: keep that out of the first table's plan time.
        using (builder.Build("lookup-warm-up", repo.PluginsDirectory, [PolicyRoutes.StageYaml(PolicyRoutes.Stage(0, last: true))])) { }
        var ipv4 = new Family("IPv4", "SourcePolicy", size => RouteTable.Generate(size, seed: size), Via, PolicyRoutes.RoutesFileStageYaml,
            source => FrameShape.Ipv4Small.Build(source, PolicyRoutes.Destination), FrameShape.Ipv4Small, IssueReference);
        var ipv6 = new Family("IPv6", "IPv6", size => RouteTable6.Generate(size, seed: size), null,
            file => $"- plugin: IPv6\n  settings:\n    routesFile: {file}\n",
            source => Frames.Ipv6Udp(source, Destination6, 64, hopLimit: 255), FrameShape.Ipv6Small, new Dictionary<int, TrieReference>());
        var rows = new List<LookupRow>();
        foreach (var family in new[] { ipv4, ipv6 })
            foreach (int size in sampling.TableSizes)
                rows.Add(Measure(builder, family, size, cancel));
        return new LookupResult(rows, sampling.RandomFrames, sampling.RandomRepeat, RouteTable.MixDescription) { Prefix6Mix = RouteTable6.MixDescription };
    }

    private static readonly IPAddress Destination6 = IPAddress.Parse("2001:db8:9::1");

    private LookupRow Measure(ChainBuilder builder, Family family, int size, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        var expect = new Expectation(Expectation.TcActRedirect, sandbox.Ifindex(Sandbox.Out1));
        log($"lookup: generating {size:N0} {family.Name} prefixes");
        var table = family.Generate(size);
        string file = Path.Combine(sandbox.WorkDirectory, $"routes-{family.Name}-{size}.txt");
        table.WriteRoutesFile(file, Sandbox.Out1, family.Via);

        log($"lookup: building {family.Plugin} with {size:N0} prefixes");
        using var built = builder.Build($"lookup-{family.Name.ToLowerInvariant()}-{size}", repo.PluginsDirectory, [family.Stage(file)]);
        File.Delete(file);
        if (built.Entries != size)
            throw new BenchException($"build {family.Name} lookup table of {size} prefixes: the plan holds {built.Entries} entries");

        var random = new Random(size);
        var repeated = family.Frame(table.AddressInside(random));
        var frames = Enumerable.Range(0, sampling.RandomFrames).Select(_ => family.Frame(table.AddressInside(random))).ToList();
        var subject = new Subject($"lookup-{size}", $"{family.Plugin} with {size:N0} prefixes", "lookup", built.Chain.Entry, _ => expect);
        subject.Verify(family.Shape, repeated);
        foreach (var frame in frames.Take(16))
            subject.Verify(family.Shape, frame);

        List<double> repeatedSamples = [], randomSamples = [], sameSamples = [];
        var order = new Random(1);
        for (int round = 0; round < sampling.Samples; round++)
        {
            repeatedSamples.Add(TestRunTimer.Repeated(built.Chain.Entry, repeated, sampling.CallsPerSample, sampling.Repeat, cancel));
            var (randomNs, sameNs) = TestRunTimer.Alternating(built.Chain.Entry, frames, repeated, sampling.RandomRepeat, order, cancel);
            randomSamples.Add(randomNs);
            sameSamples.Add(sameNs);
        }
        subject.Verify(family.Shape, repeated);
        var penalty = randomSamples.Zip(sameSamples, (r, s) => r - s).ToList();
        var row = new LookupRow(size, built.Plan.TotalMilliseconds, (built.Load + built.WriteEntries).TotalMilliseconds,
            Summary.Of(repeatedSamples), Summary.Of(repeatedSamples.Zip(penalty, (r, p) => r + p).ToList()), Summary.Of(penalty),
            Summary.Of(randomSamples), Summary.Of(sameSamples), family.Reference.GetValueOrDefault(size)) { Family = family.Name };
        log($"lookup: {size:N0} {family.Name} prefixes: repeated {row.Repeated.Median:F1} ns, random {row.Random.Median:F1} ns " +
            $"(plan {row.PlanMs:F0} ms, load and write {row.WriteMs:F0} ms)");
        return row;
    }
}
