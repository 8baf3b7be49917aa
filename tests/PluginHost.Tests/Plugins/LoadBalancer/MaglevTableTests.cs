using System.Diagnostics;
using CsCheck;
using PluginHost.Plugins.LoadBalancer.Maglev;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>
/// The Maglev table builder LoadBalancer will fill its slot map from: shares follow the weights, a change of
/// backends moves few more entries than it must, the table depends only on the backends (not their order, the
/// machine or the run), and bad input is refused with a message naming the value. The printed figures are
/// Maglev/README.md's.
/// </summary>
[Trait("Category", "Unit")]
public sealed class MaglevTableTests(ITestOutputHelper output)
{
    private const int Size = MaglevTable.DefaultSize;

    /// <summary>Slack over the minimal disruption for a removal, an addition or a weight change (README.md: measured at most 0.6 % at 65,537).</summary>
    private const double DisruptionSlack = 0.02;

    private static MaglevBackend Backend(int i, int weight = 1) => new($"up{i} 198.18.{i}.2", weight);

    private static MaglevBackend[] Backends(params int[] weights) => weights.Select((w, i) => Backend(i + 1, w)).ToArray();

    private static MaglevBackend[] EqualBackends(int count) => Enumerable.Range(1, count).Select(i => Backend(i)).ToArray();

    private static int[] ParseWeights(string weights) => weights.Split(':').Select(int.Parse).ToArray();

    /// <summary>The table as keys (null = no backend): what the datapath sees, whatever the list's order.</summary>
    private static string?[] KeysOf(IReadOnlyList<MaglevBackend> backends, int[] table) =>
        table.Select(b => b == MaglevTable.NoBackend ? null : backends[b].Key).ToArray();

    // ---- Shares ----

    [Theory]
    [InlineData("1:2:3")]
    [InlineData("1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1")]
    [InlineData("1:100")]
    [InlineData("5:3:2:1")]
    [InlineData("2:13:111:10")]
    [InlineData("1000:1:1:1:1:1:1:1")]
    [InlineData("1:1000")]
    public void EachBackendsShareIsWithinOnePercentOfItsWeightsShare(string weights)
    {
        var backends = Backends(ParseWeights(weights));
        var table = MaglevTable.Build(backends, Size);

        Assert.DoesNotContain(MaglevTable.NoBackend, table);
        var shares = MaglevReport.Shares(backends, table);
        Assert.Equal(Size, shares.Sum(s => s.Entries));
        foreach (var share in shares)
        {
            output.WriteLine($"{weights}: {share.Key} weight {share.Weight}: {share.Entries} entries, {share.Share:P3} (weight share {share.WeightShare:P3})");
            Assert.InRange(share.Share - share.WeightShare, -0.01, 0.01);
        }
    }

    /// <summary>
    /// The bound the schedule guarantees (README.md, "Shares"): a backend's entries are more than 2 below its
    /// weight's share of the table and less than 2 × backends × its weight share above it — on random lists.
    /// </summary>
    [Fact]
    public void EntriesPerBackendStayWithinTheScheduleBoundOnRandomLists()
    {
        const int size = 4_093;
        var lists = Gen.Int[0, MaglevTable.MaxWeight].Array[1, size / MaglevTable.MinEntriesPerBackend];
        lists.Sample(weights =>
        {
            var backends = Backends(weights);
            var table = MaglevTable.Build(backends, size);
            long total = weights.Sum();
            if (total == 0)
                return table.All(e => e == MaglevTable.NoBackend);
            var shares = MaglevReport.Shares(backends, table);
            return table.All(e => e >= 0 && weights[e] > 0) && shares.All(s =>
            {
                double ideal = size * (double)s.Weight / total;
                return s.Entries - ideal > -2 && s.Entries - ideal < Math.Max(1, 2.0 * weights.Length * s.Weight / total);
            });
        }, iter: 200, threads: 1, seed: new PCG(7, 0x4D41_474C).ToString());
    }

    // ---- Disruption ----

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(32)]
    public void RemovingOneOfNBackendsChangesAtMostOneNthPlusTwoPercent(int n)
    {
        var backends = EqualBackends(n);
        var before = MaglevTable.Build(backends, Size);
        double worstChanged = 0, worstKeptMoved = 0;
        for (int removed = 0; removed < n; removed++)
        {
            var rest = backends.Where((_, i) => i != removed).ToArray();
            var change = MaglevReport.Compare(backends, before, rest, MaglevTable.Build(rest, Size));
            worstChanged = Math.Max(worstChanged, change.ChangedFraction);
            worstKeptMoved = Math.Max(worstKeptMoved, change.KeptMovedFraction);
            Assert.True(change.ChangedFraction <= 1.0 / n + DisruptionSlack,
                $"removing {backends[removed].Key} of {n} changed {change.ChangedFraction:P2} (bound {1.0 / n + DisruptionSlack:P2})");
            // The survivors' entries mostly stay: only the cascade of the removed backend's turns moves any.
            Assert.True(change.KeptMovedFraction <= DisruptionSlack,
                $"removing {backends[removed].Key} of {n} moved {change.KeptMovedFraction:P2} of the other backends' entries");
        }
        output.WriteLine($"remove 1 of {n}: changed at most {worstChanged:P2} (1/N = {1.0 / n:P2}); other backends' entries moved at most {worstKeptMoved:P2}");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(32)]
    public void AddingOneToNBackendsChangesAtMostOneNPlusOnethPlusTwoPercent(int n)
    {
        var backends = EqualBackends(n);
        var before = MaglevTable.Build(backends, Size);
        double worstChanged = 0, worstBetween = 0;
        foreach (string key in new[] { "up9 203.0.113.9", "new 198.51.100.1", "up1 198.18.1.3", "x" })
        {
            var more = backends.Append(new MaglevBackend(key, 1)).ToArray();
            var after = MaglevTable.Build(more, Size);
            var change = MaglevReport.Compare(backends, before, more, after);
            worstChanged = Math.Max(worstChanged, change.ChangedFraction);
            worstBetween = Math.Max(worstBetween, change.MovedBetweenKeptFraction);
            Assert.True(change.ChangedFraction <= 1.0 / (n + 1) + DisruptionSlack,
                $"adding '{key}' to {n} changed {change.ChangedFraction:P2} (bound {1.0 / (n + 1) + DisruptionSlack:P2})");
            // What moves goes to the new backend, not from one old backend to another.
            Assert.True(change.MovedBetweenKeptFraction <= DisruptionSlack,
                $"adding '{key}' to {n} moved {change.MovedBetweenKeptFraction:P2} of the table between the old backends");
        }
        output.WriteLine($"add 1 to {n}: changed at most {worstChanged:P2} (1/(N+1) = {1.0 / (n + 1):P2}); moved between old backends at most {worstBetween:P2}");
    }

    /// <summary>
    /// The minimum a weight change 1 → 2 among N equal backends can move is what the others lose,
    /// 2/(N+1) − 1/N; Katran's schedule changes which rounds everybody's turns fall in, so the cascade
    /// moves some more. Bound: that minimum plus the same 2 % slack as a removal.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(32)]
    public void ChangingOneWeightFromOneToTwoChangesLittleMoreThanTheMinimum(int n)
    {
        var backends = EqualBackends(n);
        var before = MaglevTable.Build(backends, Size);
        double minimal = 2.0 / (n + 1) - 1.0 / n, worstChanged = 0;
        for (int heavier = 0; heavier < Math.Min(n, 8); heavier++)
        {
            var changed = backends.Select((b, i) => i == heavier ? b with { Weight = 2 } : b).ToArray();
            var change = MaglevReport.Compare(backends, before, changed, MaglevTable.Build(changed, Size));
            worstChanged = Math.Max(worstChanged, change.ChangedFraction);
            Assert.InRange(change.MinimalFraction, minimal - 0.001, minimal + 0.001);
            Assert.True(change.ChangedFraction <= minimal + DisruptionSlack,
                $"weight 1 → 2 for {backends[heavier].Key} of {n} changed {change.ChangedFraction:P2} (minimum {minimal:P2})");
        }
        output.WriteLine($"weight 1 → 2 of {n}: changed at most {worstChanged:P2} (minimum {minimal:P2})");
    }

    /// <summary>
    /// Maglev's excess churn grows as the table shrinks (the paper's figure on table size; README.md's table): at
    /// the smaller primes a removal moves up to about 4 % of the table more than the minimum (measured worst 4.1 %:
    /// 1,021 entries, 15 backends), against under 1 % at 65,537. Bound: 5 % over the minimum, for every allowed count.
    /// </summary>
    [Theory]
    [InlineData(251)]
    [InlineData(1_021)]
    [InlineData(4_093)]
    [InlineData(16_381)]
    public void SmallerTablesMoveAtMostFivePercentMoreThanTheMinimumOnARemoval(int size)
    {
        int most = size / MaglevTable.MinEntriesPerBackend;
        foreach (int n in new[] { 2, 3, 5, 8, 16, 32, 64, 128, most }.Where(n => n <= most).Distinct())
        {
            var backends = EqualBackends(n);
            var before = MaglevTable.Build(backends, size);
            double worstExcess = 0, worstKeptMoved = 0;
            for (int removed = 0; removed < Math.Min(n, 16); removed++)
            {
                var rest = backends.Where((_, i) => i != removed).ToArray();
                var change = MaglevReport.Compare(backends, before, rest, MaglevTable.Build(rest, size));
                worstExcess = Math.Max(worstExcess, change.ChangedFraction - change.MinimalFraction);
                worstKeptMoved = Math.Max(worstKeptMoved, change.KeptMovedFraction);
            }
            output.WriteLine($"size {size}, remove 1 of {n}: at most {worstExcess:P2} over the minimum; other backends' entries moved at most {worstKeptMoved:P2}");
            Assert.True(worstExcess <= 0.05, $"size {size}, remove 1 of {n}: {worstExcess:P2} over the minimum");
        }
    }

    // ---- Identity: order, drained, determinism ----

    /// <summary>Equal weights take their turns in the same rounds, so their order within a round decides who wins
    /// an entry both want: the small table with many equal backends is where a list-order dependence would show.</summary>
    [Theory]
    [InlineData("3:1:0:7:2:2:1000:5:1:0:9:4", Size)]
    [InlineData("1:1:1:1:1:1:1:1:1:1:1:1:1:1:1", 1_021)]
    [InlineData("2:2:2:1:1:1:0", 509)]
    public void ShufflingTheListGivesTheSameKeyPerEntry(string weights, int size)
    {
        var backends = Backends(ParseWeights(weights));
        var expected = KeysOf(backends, MaglevTable.Build(backends, size));
        var random = new Random(20160316);
        for (int round = 0; round < 10; round++)
        {
            var shuffled = backends.OrderBy(_ => random.Next()).ToArray();
            Assert.Equal(expected, KeysOf(shuffled, MaglevTable.Build(shuffled, size)));
        }
    }

    [Fact]
    public void ADrainedBackendTakesNoEntriesAndTheOthersKeepTheirsAsIfItWereGone()
    {
        var backends = Backends(1, 2, 3, 4);
        var drained = backends.Select((b, i) => i == 1 ? b with { Weight = 0 } : b).ToArray();
        var without = backends.Where((_, i) => i != 1).ToArray();

        var table = MaglevTable.Build(drained, Size);

        Assert.DoesNotContain(1, table);
        Assert.DoesNotContain(MaglevTable.NoBackend, table);
        Assert.Equal(0, MaglevReport.Compare(without, MaglevTable.Build(without, Size), drained, table).Changed);
    }

    [Fact]
    public void AllDrainedOrNoBackendsGivesNoBackendInEveryEntry()
    {
        Assert.All(MaglevTable.Build(Backends(0, 0, 0), Size), e => Assert.Equal(MaglevTable.NoBackend, e));
        Assert.All(MaglevTable.Build([], 251), e => Assert.Equal(MaglevTable.NoBackend, e));
        Assert.Equal(251, MaglevTable.Build([], 251).Length);
    }

    [Fact]
    public void OneBackendTakesEveryEntry()
    {
        Assert.All(MaglevTable.Build(Backends(0, 7, 0), 251), e => Assert.Equal(1, e));
    }

    /// <summary>The hash is FNV-1a 64 (published test vectors) and the table for fixed backends never changes:
    /// every host builds the same table, and a changed hash would move every flow at an upgrade.</summary>
    [Fact]
    public void TheHashAndATableAreTheDocumentedOnes()
    {
        Assert.Equal(0xCBF29CE484222325UL, MaglevHash.Fnv1a64(""));
        Assert.Equal(0xAF63DC4C8601EC8CUL, MaglevHash.Fnv1a64("a"));
        Assert.Equal(0x85944171F73967E8UL, MaglevHash.Fnv1a64("foobar"));
        Assert.Equal(MaglevHash.Fnv1a64("é"u8), MaglevHash.Fnv1a64("é"));

        var table = MaglevTable.Build(Backends(1, 2, 3), 251);
        output.WriteLine(string.Concat(table));
        Assert.Equal(Golden251, string.Concat(table));
    }

    private const string Golden251 =
        "22112021112122012200122111212220022211121220120011122111222000222111212201202211221100220012221112212000222112211001002112221122100022221122110020222122211021022222211222100212221222110211221222211221012122212222102211222222112211111222022201022112222";

    [Fact]
    public void BuildIntoASpanGivesTheSameTable()
    {
        var backends = Backends(1, 2, 3);
        var buffer = new int[1_021];
        buffer.AsSpan().Fill(42);
        MaglevTable.Build(backends, buffer.AsSpan());
        Assert.Equal(MaglevTable.Build(backends, 1_021), buffer);
    }

    [Theory]
    [InlineData(251, 3, "size 251 is too small for 4 backends (need 64 entries per backend: a prime of at least 257)")]
    [InlineData(1_021, 15, "size 1021 is too small for 16 backends (need 64 entries per backend: a prime of at least 1,031)")]
    [InlineData(4_093, 63, "size 4093 is too small for 64 backends (need 64 entries per backend: a prime of at least 4,099)")]
    [InlineData(16_381, 255, "size 16381 is too small for 256 backends (need 64 entries per backend: a prime of at least 16,411)")]
    [InlineData(65_537, 1_024, "1,025 backends (at most 1,024 per table)")]
    public void SmallerPrimesServeUpToOneBackendPer64Entries(int size, int most, string oneMore)
    {
        var table = MaglevTable.Build(EqualBackends(most), size);
        var shares = MaglevReport.Shares(EqualBackends(most), table);
        Assert.DoesNotContain(MaglevTable.NoBackend, table);
        Assert.InRange(shares.Min(s => s.Entries), size / most - 1, size / most + 1);
        Assert.InRange(shares.Max(s => s.Entries), size / most - 1, size / most + 1);
        var error = Assert.Throws<ArgumentException>(() => MaglevTable.Build(EqualBackends(most + 1), size));
        Assert.Contains(oneMore, error.Message);
    }

    // ---- Cost ----

    [Theory]
    [InlineData("3 equal", 3, 1)]
    [InlineData("16 equal", 16, 1)]
    [InlineData("64 equal", 64, 1)]
    [InlineData("64 weights 1-1000", 64, 0)]
    [InlineData("1024 equal", 1_024, 1)]
    [InlineData("1024, one 1000 and the rest 1", 1_024, -1)]
    public void BuildTimeAndAllocationForADefaultSizeTable(string name, int count, int weights)
    {
        var backends = Enumerable.Range(1, count).Select(i => Backend(i, weights switch
        {
            1 => 1,
            0 => 1 + i * 7919 % MaglevTable.MaxWeight,
            _ => i == 1 ? MaglevTable.MaxWeight : 1,
        })).ToArray();
        MaglevTable.Build(backends, Size); // JIT
        var clock = new Stopwatch();
        var times = new List<double>();
        // The least any run allocated: what the build itself allocates is in every run; a one-off of the runtime's (tiering,
        // a thread's first use of something) in one run only, which made this flaky under CI's load.
        long allocated = long.MaxValue;
        for (int run = 0; run < 15; run++)
        {
            long bytes = GC.GetAllocatedBytesForCurrentThread();
            clock.Restart();
            var table = MaglevTable.Build(backends, Size);
            clock.Stop();
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - bytes);
            times.Add(clock.Elapsed.TotalMilliseconds);
            Assert.DoesNotContain(MaglevTable.NoBackend, table);
        }
        times.Sort();
        output.WriteLine($"{name}: median {times[times.Count / 2]:F2} ms, min {times[0]:F2} ms; allocated {allocated / 1024.0:F1} KiB (table {Size * 4 / 1024.0:F1} KiB)");
        // Allocation-light: the table, and a few words per backend (no size × backends permutations).
        Assert.True(allocated < Size * sizeof(int) + 64 * count + 4_096, $"allocated {allocated} bytes");
    }

    // ---- Bad input ----

    [Theory]
    [InlineData("not a prime", "size 65536 is not a prime (the nearest primes are 65,521 and 65,537")]
    [InlineData("size 1", "size 1 is out of range")]
    [InlineData("size too large", "size 2000003 is out of range (expected a prime up to 1,048,576")]
    [InlineData("too small", "size 251 is too small for 4 backends (need 64 entries per backend: a prime of at least 257)")]
    [InlineData("weight 1001", "backend 1 ('up2 198.18.2.2') has weight 1001 (expected 1 to 1,000, or 0 to drain it)")]
    [InlineData("weight -1", "backend 0 ('up1 198.18.1.2') has weight -1")]
    [InlineData("duplicate key", "backends 0 and 2 have the same key 'up1 198.18.1.2' (keys must be unique)")]
    [InlineData("empty key", "backend 1 has no key")]
    [InlineData("too many", "1,025 backends (at most 1,024 per table)")]
    public void BadInputIsRefusedNamingTheValue(string what, string message)
    {
        Action build = what switch
        {
            "not a prime" => () => MaglevTable.Build(Backends(1, 2), 65_536),
            "size 1" => () => MaglevTable.Build([], 1),
            "size too large" => () => MaglevTable.Build(Backends(1), 2_000_003),
            "too small" => () => MaglevTable.Build(Backends(1, 1, 1, 0), 251),
            "weight 1001" => () => MaglevTable.Build(Backends(1, 1001), Size),
            "weight -1" => () => MaglevTable.Build(Backends(-1, 1), Size),
            "duplicate key" => () => MaglevTable.Build([Backend(1), Backend(2), Backend(1, 5)], Size),
            "empty key" => () => MaglevTable.Build([Backend(1), new MaglevBackend("", 1)], Size),
            "too many" => () => MaglevTable.Build(EqualBackends(1_025), Size),
            _ => throw new ArgumentOutOfRangeException(nameof(what)),
        };
        var error = Assert.Throws<ArgumentException>(build);
        Assert.StartsWith("build maglev table: ", error.Message);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void ComparingTablesOfDifferentSizesIsRefused()
    {
        var backends = Backends(1);
        var error = Assert.Throws<ArgumentException>(() =>
            MaglevReport.Compare(backends, MaglevTable.Build(backends, 251), backends, MaglevTable.Build(backends, 257)));
        Assert.Equal("compare maglev tables: sizes 251 and 257 differ", error.Message);
    }
}
