using PluginHost.Plugins.Shared.FlatTables;

namespace PluginHost.Tests.Plugins.Shared.FlatTables;

/// <summary>
/// The obviously correct IPv4 longest-prefix match the flat tables are checked against: one dictionary per length,
/// searched from /32 down to /0. Slow (up to 33 hash lookups) and simple on purpose.
/// </summary>
internal sealed class ReferenceLpm4
{
    private readonly Dictionary<uint, uint>[] _byLength = Enumerable.Range(0, 33).Select(_ => new Dictionary<uint, uint>()).ToArray();

    public ReferenceLpm4() { }

    public ReferenceLpm4(IEnumerable<Ipv4Route> routes)
    {
        foreach (var route in routes)
            Set(route.Prefix, route.Length, route.NextHop);
    }

    public int Count => _byLength.Sum(d => d.Count);

    public void Set(uint prefix, int length, uint nextHop) => _byLength[length][Mask(prefix, length)] = nextHop;

    public bool Remove(uint prefix, int length) => _byLength[length].Remove(Mask(prefix, length));

    /// <summary>The next hop of the longest prefix covering <paramref name="address"/>, 0 when none does.</summary>
    public uint Lookup(uint address)
    {
        for (int length = 32; length >= 0; length--)
            if (_byLength[length].TryGetValue(Mask(address, length), out uint nextHop))
                return nextHop;
        return 0;
    }

    private static uint Mask(uint address, int length) => length == 0 ? 0 : address & (uint.MaxValue << (32 - length));
}
