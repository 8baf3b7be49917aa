using System.Diagnostics;
using System.IO.Compression;
using PluginHost.Plugins.Shared;
using PluginHost.Plugins.Shared.FlatTables;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Plugins.Shared.FlatTables;

/// <summary>
/// Issue 15 groundwork: the DIR-24-8 table (plugins/Shared/FlatTables) against the reference LPM, on the real Internet
/// table and on random ones, and its update writes replayed one at a time under a check after every write.
/// </summary>
[Trait("Category", "Unit")]
public sealed class Dir24_8Tests(ITestOutputHelper output)
{
    private const int Lookups = 1_000_000;

    [Fact]
    public void RemovingAPrefixRestoresTheNextShorterCoveringAnswer()
    {
        var table = new Dir24_8(maxGroups: 4);
        table.Add(Ip(10, 0, 0, 0), 8, 1);
        table.Add(Ip(10, 1, 0, 0), 16, 2);
        table.Add(Ip(10, 1, 2, 0), 24, 3);
        table.Add(Ip(10, 1, 2, 128), 25, 4);
        table.Add(Ip(10, 1, 2, 192), 26, 5);

        Assert.Equal(5u, table.Lookup(Ip(10, 1, 2, 200)));
        Assert.Equal(4u, table.Lookup(Ip(10, 1, 2, 130)));
        Assert.Equal(3u, table.Lookup(Ip(10, 1, 2, 1)));
        Assert.Equal(1, table.GroupsUsed);

        table.Remove(Ip(10, 1, 2, 128), 25);
        Assert.Equal(5u, table.Lookup(Ip(10, 1, 2, 200)));
        Assert.Equal(3u, table.Lookup(Ip(10, 1, 2, 130)));
        table.Remove(Ip(10, 1, 2, 0), 24);
        Assert.Equal(2u, table.Lookup(Ip(10, 1, 2, 130)));
        Assert.Equal(5u, table.Lookup(Ip(10, 1, 2, 200)));

        // The last prefix longer than /24 goes: the first level points back at the /24's answer, then the group is freed.
        var writes = table.Remove(Ip(10, 1, 2, 192), 26);
        Assert.Equal(new FlatWrite(1, Ip(10, 1, 2, 0) >> 8, 2), writes[^1]);
        Assert.Equal(0, table.GroupsUsed);
        Assert.Equal(2u, table.Lookup(Ip(10, 1, 2, 200)));
        table.Remove(Ip(10, 1, 0, 0), 16);
        Assert.Equal(1u, table.Lookup(Ip(10, 1, 2, 200)));
        table.Remove(Ip(10, 0, 0, 0), 8);
        Assert.Equal(0u, table.Lookup(Ip(10, 1, 2, 200)));
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void ANewGroupIsFilledBeforeTheFirstLevelPointsAtIt()
    {
        var table = new Dir24_8(maxGroups: 1);
        table.Add(Ip(192, 0, 2, 0), 24, 7);

        var writes = table.Add(Ip(192, 0, 2, 64), 26, 8);

        Assert.Equal(257, writes.Count);
        Assert.All(writes.Take(256), w => Assert.Equal(2, w.Level));
        Assert.Equal(new FlatWrite(1, Ip(192, 0, 2, 0) >> 8, Dir24_8Image.GroupFlag | 0), writes[^1]);
    }

    [RealTableFact]
    public void TheRealInternetTableMatchesTheReference()
    {
        var routes = RealTable.Read();
        var reference = new ReferenceLpm4(routes);

        long before = GC.GetTotalMemory(forceFullCollection: true);
        var clock = Stopwatch.StartNew();
        var table = Dir24_8.Build(routes, maxGroups: 65_536);
        var built = clock.Elapsed;
        long after = GC.GetTotalMemory(forceFullCollection: true);

        Assert.Equal(reference.Count, table.Count);
        int mismatches = Compare(table, reference, routes, seed: 15);
        output.WriteLine($"real table: {routes.Count:N0} lines, {table.Count:N0} prefixes; build {built.TotalMilliseconds:N0} ms; " +
            $"first level {Dir24_8.Level1Bytes / (1 << 20)} MiB, {table.GroupsUsed:N0} groups ({table.GroupBytes / 1024.0 / 1024:N1} MiB); " +
            $"managed heap +{(after - before) / 1024.0 / 1024:N0} MiB (with bookkeeping); {Lookups:N0} lookups, {mismatches} mismatches");
        GC.KeepAlive(table);
        Assert.Equal(0, mismatches);
    }

    /// <summary>
    /// 1,000,000 random prefixes drawn (712,608 distinct; about 3 s, 317k groups, 1.1 GB resident for the test process);
    /// PLUGINHOST_FLAT_RANDOM sets another count.
    /// </summary>
    [Fact]
    public void ARandomTableMatchesTheReference()
    {
        int count = int.TryParse(Environment.GetEnvironmentVariable("PLUGINHOST_FLAT_RANDOM"), out int n) ? n : 1_000_000;
        var random = new Random(100_000);
        var routes = RandomRoutes(random, count, 8, 32);
        var reference = new ReferenceLpm4(routes);

        long before = GC.GetTotalMemory(forceFullCollection: true);
        var clock = Stopwatch.StartNew();
        var table = Dir24_8.Build(routes, maxGroups: Math.Max(count, 1));
        var built = clock.Elapsed;
        long after = GC.GetTotalMemory(forceFullCollection: true);

        int mismatches = Compare(table, reference, routes, seed: 8);
        output.WriteLine($"random table: {count:N0} drawn, {table.Count:N0} distinct prefixes /8–/32; build {built.TotalMilliseconds:N0} ms; " +
            $"{table.GroupsUsed:N0} groups ({table.GroupBytes / 1024.0 / 1024:N1} MiB); managed heap +{(after - before) / 1024.0 / 1024:N0} MiB (with bookkeeping); " +
            $"{Lookups:N0} lookups, {mismatches} mismatches");
        GC.KeepAlive(table);
        Assert.Equal(0, mismatches);
    }

    /// <summary>
    /// 10,000 random adds, changes and removes on a live table; each one's writes are replayed one at a time onto a
    /// replica of the datapath's image, and after every single write each sampled address of the changed prefix must
    /// answer its old or its new next hop, never a third.
    /// </summary>
    [Fact]
    public void EveryWriteOfAnUpdateStormLeavesTheOldOrTheNewAnswer()
    {
        var random = new Random(10_000);
        var routes = RandomRoutes(random, 20_000, 8, 32);
        var reference = new ReferenceLpm4(routes);
        var table = Dir24_8.Build(routes, maxGroups: 40_000);
        var replica = table.Image.Clone();
        var held = routes.Select(r => (Dir24_8.Mask(r.Prefix, r.Length), r.Length)).Distinct().ToList();

        const int Samples = 16;
        var addresses = new uint[Samples];
        var olds = new uint[Samples];
        var news = new uint[Samples];
        long writesReplayed = 0, checks = 0;
        for (int change = 0; change < 10_000; change++)
        {
            bool remove = held.Count > 0 && random.Next(2) == 0;
            uint prefix;
            int length;
            int at = -1;
            if (remove)
            {
                at = random.Next(held.Count);
                (prefix, length) = held[at];
            }
            else
            {
                length = random.Next(8, 33);
                prefix = Dir24_8.Mask((uint)random.NextInt64(1L << 32), length);
            }

            for (int s = 0; s < Samples; s++)
            {
                uint span = length == 0 ? uint.MaxValue : (uint)((1UL << (32 - length)) - 1);
                addresses[s] = s == 0 ? prefix : s == 1 ? prefix + span : prefix + (uint)random.NextInt64((long)span + 1);
                olds[s] = reference.Lookup(addresses[s]);
            }

            IReadOnlyList<FlatWrite> writes;
            if (remove)
            {
                writes = table.Remove(prefix, length);
                reference.Remove(prefix, length);
                held[at] = held[^1];
                held.RemoveAt(held.Count - 1);
            }
            else
            {
                uint nextHop = (uint)random.Next(1, 1001);
                if (table.Find(prefix, length) == null)
                    held.Add((prefix, length));
                writes = table.Add(prefix, length, nextHop);
                reference.Set(prefix, length, nextHop);
            }
            for (int s = 0; s < Samples; s++)
                news[s] = reference.Lookup(addresses[s]);

            foreach (var write in writes)
            {
                replica.Apply(write);
                writesReplayed++;
                for (int s = 0; s < Samples; s++)
                {
                    uint seen = replica.Lookup(addresses[s]);
                    if (seen != olds[s] && seen != news[s])
                        Assert.Fail($"change {change} ({(remove ? "remove" : "add")} /{length}), after write {write}: " +
                            $"address {addresses[s]:X8} answered {seen}, neither old {olds[s]} nor new {news[s]}");
                }
                checks += Samples;
            }
            for (int s = 0; s < Samples; s++)
                Assert.Equal(news[s], replica.Lookup(addresses[s]));
        }

        int mismatches = 0;
        var check = new Random(7);
        for (int i = 0; i < 200_000; i++)
        {
            uint address = (uint)check.NextInt64(1L << 32);
            uint expected = reference.Lookup(address);
            if (table.Lookup(address) != expected || replica.Lookup(address) != expected)
                mismatches++;
        }
        output.WriteLine($"storm: 10,000 changes, {writesReplayed:N0} writes replayed, {checks:N0} checks; {table.GroupsUsed:N0} groups in use; {mismatches} final mismatches");
        Assert.Equal(0, mismatches);
    }

    /// <summary>The storm's check is not vacuous: pointing the first level at a group before filling it is caught.</summary>
    [Fact]
    public void PointingAtAGroupBeforeFillingItWouldShowAThirdAnswer()
    {
        var table = new Dir24_8(maxGroups: 2);
        table.Add(Ip(192, 0, 2, 0), 24, 7);
        var replica = table.Image.Clone();
        var writes = table.Add(Ip(192, 0, 2, 128), 25, 8);

        replica.Apply(writes[^1]); // the pointer first: the group is still empty
        Assert.Equal(0u, replica.Lookup(Ip(192, 0, 2, 1))); // neither 7 nor 8
    }

    [Fact]
    public void ExhaustingTheGroupsNamesTheCountAndTheLimitAndChangesNothing()
    {
        var routes = new[]
        {
            new Ipv4Route(Ip(10, 0, 0, 0), 25, 1),
            new Ipv4Route(Ip(10, 0, 1, 0), 25, 2),
            new Ipv4Route(Ip(10, 0, 2, 0), 32, 3),
            new Ipv4Route(Ip(10, 0, 2, 9), 32, 4),
        };
        var error = Assert.Throws<FlatTableFullException>(() => Dir24_8.Build(routes, maxGroups: 2));
        Assert.Equal("build flat table: 3 second-level groups needed, the limit is 2 (raise the group limit or drop prefixes longer than /24)", error.Message);
        Assert.Equal((3, 2), (error.Needed, error.Limit));

        var table = Dir24_8.Build(routes[..2], maxGroups: 2);
        var add = Assert.Throws<FlatTableFullException>(() => table.Add(Ip(10, 0, 2, 0), 32, 3));
        Assert.Equal("add 10.0.2.0/32: 3 second-level groups needed, the limit is 2 (raise the group limit or drop prefixes longer than /24)", add.Message);
        Assert.Equal(2, table.Count);
        Assert.Null(table.Find(Ip(10, 0, 2, 0), 32));
        Assert.Equal(0u, table.Lookup(Ip(10, 0, 2, 0)));

        // A prefix inside a /24 that already has its group needs no new one.
        Assert.NotEmpty(table.Add(Ip(10, 0, 0, 200), 32, 9));
        Assert.Equal(9u, table.Lookup(Ip(10, 0, 0, 200)));
    }

    /// <summary>Half uniform addresses, half addresses inside a random route (so groups and short prefixes are hit).</summary>
    private static int Compare(Dir24_8 table, ReferenceLpm4 reference, IReadOnlyList<Ipv4Route> routes, int seed)
    {
        var random = new Random(seed);
        int mismatches = 0;
        for (int i = 0; i < Lookups; i++)
        {
            uint address;
            if ((i & 1) == 0)
                address = (uint)random.NextInt64(1L << 32);
            else
            {
                var route = routes[random.Next(routes.Count)];
                uint span = route.Length == 0 ? uint.MaxValue : (uint)((1UL << (32 - route.Length)) - 1);
                address = Dir24_8.Mask(route.Prefix, route.Length) + (uint)random.NextInt64((long)span + 1);
            }
            if (table.Lookup(address) != reference.Lookup(address))
                mismatches++;
        }
        return mismatches;
    }

    private static List<Ipv4Route> RandomRoutes(Random random, int count, int minLength, int maxLength)
    {
        var routes = new List<Ipv4Route>(count);
        for (int i = 0; i < count; i++)
        {
            int length = random.Next(minLength, maxLength + 1);
            routes.Add(new Ipv4Route(Dir24_8.Mask((uint)random.NextInt64(1L << 32), length), length, (uint)random.Next(1, 1001)));
        }
        return routes;
    }

    private static uint Ip(byte a, byte b, byte c, byte d) => (uint)(a << 24 | b << 16 | c << 8 | d);
}

/// <summary>The real Internet IPv4 table: $PLUGINHOST_INTERNET, or the shared data folder of the lab machines.</summary>
internal static class RealTable
{
    public static string Directory { get; } = Environment.GetEnvironmentVariable("PLUGINHOST_INTERNET") ?? "/work/shared/data/internet";

    public static string Ipv4Path => Path.Combine(Directory, "ipv4-prefixes.txt.gz");

    /// <summary>Why a real-table test cannot run here, or null. Under CI=true it always runs, so missing data fails it.</summary>
    public static string? SkipReason =>
        Environment.GetEnvironmentVariable("CI") == "true" || File.Exists(Ipv4Path)
            ? null
            : $"needs the Internet prefix table {Ipv4Path} (set PLUGINHOST_INTERNET); runs in CI";

    /// <summary>Lines "PREFIX/LEN ASN"; next-hop index = ASN % 1000 + 1.</summary>
    public static List<Ipv4Route> Read()
    {
        using var file = File.OpenRead(Ipv4Path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        var routes = new List<Ipv4Route>(1 << 20);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#')
                continue;
            int space = line.IndexOf(' ');
            if (space < 0 || !Ipv4Text.TryParsePrefix(line.AsSpan(0, space), out uint prefix, out int length) || !uint.TryParse(line.AsSpan(space + 1), out uint asn))
                throw new InvalidDataException($"read {Ipv4Path}: malformed line '{line}'");
            routes.Add(new Ipv4Route(prefix, length, asn % 1000 + 1));
        }
        return routes;
    }
}

public sealed class RealTableFactAttribute : FactAttribute
{
    public RealTableFactAttribute() => Skip = RealTableSkip.Reason;
}

internal static class RealTableSkip
{
    public static string? Reason => RealTable.SkipReason;
}
