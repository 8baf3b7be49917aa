using System.Buffers.Binary;
using System.Net;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// The IPv6 counterpart of <see cref="RouteTable"/>: distinct random global-unicast prefixes (inside 2000::/3,
/// seeded) with lengths mixed roughly like an IPv6 Internet table's (mostly /48), as an IPv6 plugin routes file.
/// </summary>
public sealed class RouteTable6 : IRouteTable
{
    // (length, weight in percent)
    private static readonly (int Length, int Weight)[] Mix =
        [(29, 3), (32, 12), (36, 4), (40, 6), (44, 10), (48, 50), (56, 5), (64, 5), (128, 5)];

    public const string MixDescription = "random distinct prefixes in 2000::/3, /29–/128, 50 % /48 (seeded)";

    private readonly (UInt128 Prefix, int Length)[] _prefixes;

    private RouteTable6((UInt128, int)[] prefixes) => _prefixes = prefixes;

    public int Count => _prefixes.Length;

    public static RouteTable6 Generate(int count, int seed)
    {
        var random = new Random(seed);
        var seen = new HashSet<(UInt128, int)>(count);
        var prefixes = new (UInt128, int)[count];
        Span<byte> bytes = stackalloc byte[16];
        for (int i = 0; i < count;)
        {
            int length = RouteTable.PickLength(random, Mix);
            random.NextBytes(bytes);
            bytes[0] = (byte)(0x20 | (bytes[0] & 0x1f)); // 2000::/3
            var prefix = Mask(BinaryPrimitives.ReadUInt128BigEndian(bytes), length);
            if (seen.Add((prefix, length)))
                prefixes[i++] = (prefix, length);
        }
        return new RouteTable6(prefixes);
    }

    public IPAddress AddressInside(Random random)
    {
        var (prefix, length) = _prefixes[random.Next(_prefixes.Length)];
        Span<byte> bytes = stackalloc byte[16];
        random.NextBytes(bytes);
        var host = length == 128 ? UInt128.Zero : BinaryPrimitives.ReadUInt128BigEndian(bytes) & (UInt128.MaxValue >> length);
        BinaryPrimitives.WriteUInt128BigEndian(bytes, prefix | host);
        return new IPAddress(bytes);
    }

    public void WriteRoutesFile(string path, string iface, IPAddress? via)
    {
        Span<byte> bytes = stackalloc byte[16];
        using var writer = new StreamWriter(path);
        foreach (var (prefix, length) in _prefixes)
        {
            BinaryPrimitives.WriteUInt128BigEndian(bytes, prefix);
            writer.Write(new IPAddress(bytes));
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

    private static UInt128 Mask(UInt128 address, int length) => length == 0 ? UInt128.Zero : address & (UInt128.MaxValue << (128 - length));
}

/// <summary>A generated routes table of either family.</summary>
public interface IRouteTable
{
    int Count { get; }

    /// <summary>A random address inside one of the prefixes (so a lookup always finds a route).</summary>
    IPAddress AddressInside(Random random);

    void WriteRoutesFile(string path, string iface, IPAddress? via);
}
