using System.Net;
using PluginHost.Plugins.Shared;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// A large source-route table for the lookup benchmark: distinct random prefixes (seeded, so every run
/// builds the same table) with a mix of lengths roughly like an Internet routing table's, written as a
/// SourcePolicy routes file ("PREFIX INTERFACE VIA" per line).
/// </summary>
public sealed class RouteTable : IRouteTable
{
    // (length, weight in percent)
    private static readonly (int Length, int Weight)[] Mix =
        [(16, 2), (18, 2), (19, 3), (20, 5), (21, 5), (22, 10), (23, 8), (24, 55), (28, 3), (32, 7)];

    public const string MixDescription = "random distinct prefixes, /16–/32, 55 % /24 (seeded)";

    private readonly (uint Prefix, int Length)[] _prefixes;

    private RouteTable((uint, int)[] prefixes) => _prefixes = prefixes;

    public int Count => _prefixes.Length;

    public static RouteTable Generate(int count, int seed)
    {
        var random = new Random(seed);
        var seen = new HashSet<ulong>(count);
        var prefixes = new (uint, int)[count];
        for (int i = 0; i < count;)
        {
            int length = PickLength(random);
            uint prefix = Ipv4Text.Mask((uint)random.NextInt64(0, 1L << 32), length);
            if (seen.Add(((ulong)prefix << 8) | (uint)length))
                prefixes[i++] = (prefix, length);
        }
        return new RouteTable(prefixes);
    }

    /// <summary>A random address inside one of the prefixes (so a lookup always finds a route).</summary>
    public IPAddress AddressInside(Random random)
    {
        var (prefix, length) = _prefixes[random.Next(_prefixes.Length)];
        uint host = length == 32 ? 0 : (uint)random.NextInt64(0, 1L << (32 - length));
        return Ipv4Text.ToAddress(prefix | host);
    }

    public void WriteRoutesFile(string path, string iface, IPAddress? via)
    {
        using var writer = new StreamWriter(path);
        foreach (var (prefix, length) in _prefixes)
        {
            writer.Write(Ipv4Text.ToAddress(prefix));
            writer.Write('/');
            writer.Write(length);
            writer.Write(' ');
            writer.Write(iface);
            if (via is not null)
            {
                writer.Write(' ');
                writer.Write(via);
            }
            writer.WriteLine();
        }
    }

    private static int PickLength(Random random) => PickLength(random, Mix);

    /// <summary>A prefix length drawn from a mix of (length, weight in percent).</summary>
    internal static int PickLength(Random random, (int Length, int Weight)[] mix)
    {
        int roll = random.Next(100);
        foreach (var (length, weight) in mix)
        {
            if (roll < weight)
                return length;
            roll -= weight;
        }
        return mix[^1].Length;
    }
}
