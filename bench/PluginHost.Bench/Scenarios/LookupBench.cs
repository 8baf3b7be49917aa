using System.Net;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Packets;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 2 of issue 5: a one-stage SourcePolicy chain (64-byte IPv4, every lookup a hit) with 10 to
/// 1,000,000 prefixes from a routes file, once with one source address repeated and once with random
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

    public LookupResult Run(CancellationToken cancel)
    {
        var builder = new ChainBuilder(sandbox);
        int out1 = sandbox.Ifindex(Sandbox.Out1);
        var expect = new Expectation(Expectation.TcActRedirect, out1);
        var rows = new List<LookupRow>();
        // The first build also loads and JITs the plugin path: keep that out of the first table's plan time.
        using (builder.Build("lookup-warm-up", repo.PluginsDirectory, [PolicyRoutes.StageYaml(PolicyRoutes.Stage(0, last: true))])) { }
        foreach (int size in sampling.TableSizes)
        {
            cancel.ThrowIfCancellationRequested();
            log($"lookup: generating {size:N0} prefixes");
            var table = RouteTable.Generate(size, seed: size);
            string file = Path.Combine(sandbox.WorkDirectory, $"routes-{size}.txt");
            table.WriteRoutesFile(file, Sandbox.Out1, Via);

            log($"lookup: building SourcePolicy with {size:N0} prefixes");
            using var built = builder.Build($"lookup{size}", repo.PluginsDirectory, [PolicyRoutes.RoutesFileStageYaml(file)]);
            File.Delete(file);
            if (built.Entries != size)
                throw new BenchException($"build lookup table of {size} prefixes: the plan holds {built.Entries} entries");

            var random = new Random(size);
            var repeated = FrameShape.Ipv4Small.Build(table.AddressInside(random), PolicyRoutes.Destination);
            var frames = Enumerable.Range(0, sampling.RandomFrames)
                .Select(_ => FrameShape.Ipv4Small.Build(table.AddressInside(random), PolicyRoutes.Destination)).ToList();
            var subject = new Subject($"lookup-{size}", $"SourcePolicy with {size:N0} prefixes", "lookup", built.Chain.Entry, _ => expect);
            subject.Verify(FrameShape.Ipv4Small, repeated);
            foreach (var frame in frames.Take(16))
                subject.Verify(FrameShape.Ipv4Small, frame);

            List<double> repeatedSamples = [], randomSamples = [], sameSamples = [];
            var order = new Random(1);
            for (int round = 0; round < sampling.Samples; round++)
            {
                repeatedSamples.Add(TestRunTimer.Repeated(built.Chain.Entry, repeated, sampling.CallsPerSample, sampling.Repeat, cancel));
                var (randomNs, sameNs) = TestRunTimer.Alternating(built.Chain.Entry, frames, repeated, sampling.RandomRepeat, order, cancel);
                randomSamples.Add(randomNs);
                sameSamples.Add(sameNs);
            }
            subject.Verify(FrameShape.Ipv4Small, repeated);
            var penalty = randomSamples.Zip(sameSamples, (r, s) => r - s).ToList();
            var row = new LookupRow(size, built.Plan.TotalMilliseconds, (built.Load + built.WriteEntries).TotalMilliseconds,
                Summary.Of(repeatedSamples), Summary.Of(repeatedSamples.Zip(penalty, (r, p) => r + p).ToList()), Summary.Of(penalty),
                Summary.Of(randomSamples), Summary.Of(sameSamples), IssueReference.GetValueOrDefault(size));
            log($"lookup: {size:N0} prefixes: repeated {row.Repeated.Median:F1} ns, random {row.Random.Median:F1} ns " +
                $"(plan {row.PlanMs:F0} ms, load and write {row.WriteMs:F0} ms)");
            rows.Add(row);
        }
        return new LookupResult(rows, sampling.RandomFrames, sampling.RandomRepeat, RouteTable.MixDescription);
    }
}
