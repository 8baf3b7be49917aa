using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace PluginHost.Net;

/// <summary>A prefix an interface reaches directly: the subnet of one of its addresses, or a route out of it with no gateway.</summary>
public sealed record Subnet(IPAddress Network, int Length)
{
    /// <summary>The prefix of <paramref name="address"/> (its host bits cleared).</summary>
    public static Subnet Of(IPAddress address, int length)
    {
        byte[] bytes = address.GetAddressBytes();
        for (int bit = length; bit < bytes.Length * 8; bit++)
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        return new Subnet(new IPAddress(bytes), length);
    }

    public bool Contains(IPAddress address) =>
        address.AddressFamily == Network.AddressFamily && Of(address, Length).Network.Equals(Network);

    public override string ToString() => $"{Network}/{Length}";
}

/// <summary>
/// Whether a next hop is on-link for an interface: inside one of its subnets, or covered by a route out of it that has no
/// gateway (<c>ip route add 198.18.7.0/24 dev up1</c>). Read in the calling thread's network namespace: addresses from
/// <see cref="NetworkInterface"/> (with prefix lengths), routes from <c>/proc/thread-self/net/route</c> and <c>ipv6_route</c>
/// (per-thread network namespace, unlike <c>/proc/net</c> of a process).
/// </summary>
public static class OnLink
{
    private const int RtfGateway = 0x2;

    /// <summary>Every interface's directly reached prefixes, in the calling thread's namespace.</summary>
    public static Dictionary<string, List<Subnet>> ReadAll()
    {
        var all = new Dictionary<string, List<Subnet>>();
        void Add(string ifname, Subnet subnet)
        {
            if (!all.TryGetValue(ifname, out var list))
                all[ifname] = list = [];
            if (!list.Contains(subnet))
                list.Add(subnet);
        }
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
            foreach (var address in nic.GetIPProperties().UnicastAddresses)
                if (address.Address.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
                    Add(nic.Name, Subnet.Of(address.Address, address.PrefixLength));
        foreach (var (ifname, subnet) in ParseIpv4Routes(ReadLines("/proc/thread-self/net/route")))
            Add(ifname, subnet);
        foreach (var (ifname, subnet) in ParseIpv6Routes(ReadLines("/proc/thread-self/net/ipv6_route")))
            Add(ifname, subnet);
        return all;
    }

    private static IEnumerable<string> ReadLines(string path) => File.Exists(path) ? File.ReadAllLines(path) : [];

    /// <summary>
    /// The direct routes (no gateway) of <c>/proc/net/route</c>: "Iface Destination Gateway Flags RefCnt Use Metric Mask ...",
    /// addresses as hex of the network-order bytes read as a little-endian number.
    /// </summary>
    public static List<(string Ifname, Subnet Subnet)> ParseIpv4Routes(IEnumerable<string> lines)
    {
        var routes = new List<(string, Subnet)>();
        foreach (var line in lines.Skip(1))
        {
            var f = line.Split(new[] { '\t', ' ' }, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 8
                || !uint.TryParse(f[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint destination)
                || !int.TryParse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int flags)
                || !uint.TryParse(f[7], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint mask)
                || (flags & RtfGateway) != 0)
                continue;
            int length = System.Numerics.BitOperations.PopCount(mask);
            routes.Add((f[0], Subnet.Of(new IPAddress(BitConverter.GetBytes(destination)), length)));
        }
        return routes;
    }

    /// <summary>
    /// The direct routes of <c>/proc/net/ipv6_route</c>: "destination(32 hex) length(hex) source length next-hop metric
    /// refcount use flags(hex) device"; a route with a gateway (RTF_GATEWAY) or out of <c>lo</c> is not one.
    /// </summary>
    public static List<(string Ifname, Subnet Subnet)> ParseIpv6Routes(IEnumerable<string> lines)
    {
        var routes = new List<(string, Subnet)>();
        foreach (var line in lines)
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 10 || f[0].Length != 32 || f[9] == "lo"
                || !int.TryParse(f[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int length)
                || !int.TryParse(f[8], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int flags)
                || (flags & RtfGateway) != 0 || length > 128)
                continue;
            routes.Add((f[9], Subnet.Of(new IPAddress(Convert.FromHexString(f[0])), length)));
        }
        return routes;
    }

    /// <summary>
    /// Why <paramref name="via"/> is not on-link for <paramref name="ifname"/> given the prefixes it reaches directly, or
    /// null when it is (an IPv6 link-local next hop always is: the interface is its zone).
    /// </summary>
    public static string? Problem(IPAddress via, string ifname, IReadOnlyList<Subnet> subnets)
    {
        if (via.IsIPv6LinkLocal || subnets.Any(s => s.Contains(via)))
            return null;
        var family = subnets.Where(s => s.Network.AddressFamily == via.AddressFamily && !(s.Network.IsIPv6LinkLocal && s.Length == 64)).ToList();
        return $"next hop {via} is not on-link for {ifname} (its subnets: {(family.Count == 0 ? "none" : string.Join(", ", family))})";
    }

    /// <summary>Whether the interface reaches any prefix of <paramref name="family"/> directly (besides IPv6 link-local).</summary>
    public static bool HasAny(IReadOnlyList<Subnet> subnets, AddressFamily family) =>
        subnets.Any(s => s.Network.AddressFamily == family && !s.Network.IsIPv6LinkLocal);
}
