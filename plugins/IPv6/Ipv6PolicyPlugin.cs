using System.Net;
using System.Net.Sockets;
using PluginHost.Contract;

namespace PluginHost.Plugins.IPv6;

/// <summary>
/// Source-based policy routing for IPv6: packets whose IPv6 source falls in a configured prefix leave by that
/// route's interface and next hop (longest prefix wins); everything else, and every link-local, multicast or
/// unspecified address, follows the kernel. The IPv6 counterpart of SourcePolicy; both can sit in one pipeline.
/// </summary>
/// <example>
/// settings:
///   routes:
///     - from: 2001:db8:1::/48
///       interface: up2
///       via: fe80::2
/// </example>
public sealed class Ipv6PolicyPlugin : IRoutingPlugin, IRuntimeCommands
{
    private const string RoutesMap = "routes";
    private static readonly IPAddress CanaryDestination = IPAddress.Parse("2001:db8:ffff::1");

    public string Name => "IPv6";

    public string Description => "Route IPv6 packets by source prefix (longest match) to an interface and next hop.";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(Ipv6PolicyPlugin).Assembly, "ipv6_policy.c.sbn");

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        new MapSchema(RoutesMap, MapKind.LpmTrie,
            Key: [new Field("prefixlen", FieldType.U32), new Field("addr", FieldType.Ipv6)],
            Value: [new Field("ifindex", FieldType.U32), new Field("nexthop", FieldType.Ipv6)],
            MaxEntries: 1 << 18),
    ];

    public IReadOnlyList<RuntimeCommand> Commands { get; } =
    [
        new("route6", "add", "Add or replace an IPv6 source route", "routes", "from", RuntimeAction.Add,
        [
            new("from", "IPv6 source prefix, e.g. 2001:db8:1::/48"),
            new("interface", "output interface"),
            new("via", "IPv6 next hop, link-local allowed (default: the packet's destination)", Required: false),
        ]),
        new("route6", "del", "Remove the IPv6 source route for a prefix", "routes", "from", RuntimeAction.Remove,
            [new("from", "IPv6 source prefix of the route to remove")]),
        new("route6", "list", "Show the IPv6 routes in effect", "routes", "from", RuntimeAction.List, []),
    ];

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        if (settings.IsMissing)
            return StageSetup.Empty;
        if (settings.Kind != SettingsKind.Mapping)
        {
            context.Error(settings, "expected a mapping with 'routes'");
            return StageSetup.Empty;
        }
        settings.RejectUnknownKeys(context, "routes");
        var routes = settings["routes"];
        if (!routes.IsMissing && routes.Kind != SettingsKind.Sequence)
        {
            context.Error(routes, "expected a list of routes");
            return StageSetup.Empty;
        }

        var entries = new List<MapEntry>();
        var seen = new Dictionary<(IPAddress, int), string>();
        var accepted = new List<Route>();
        foreach (var route in routes.Items)
        {
            if (route.Kind != SettingsKind.Mapping)
            {
                context.Error(route, "expected a route with 'from', 'interface' and optionally 'via'");
                continue;
            }
            route.RejectUnknownKeys(context, "from", "interface", "via");
            bool ok = TryParsePrefix(route["from"], context, out var prefix, out int length);
            ok &= route["interface"].TryResolveInterface(context, out int ifindex);
            ok &= TryParseNextHop(route["via"], context, out var nexthop);
            if (!ok)
                continue;
            if (seen.TryGetValue((prefix, length), out var firstPath))
            {
                context.Error(route["from"], $"duplicate prefix {prefix}/{length} (first given at {firstPath})");
                continue;
            }
            seen[(prefix, length)] = route["from"].Path;
            accepted.Add(new Route(prefix, length, ifindex));
            entries.Add(new MapEntry(RoutesMap,
                new Dictionary<string, object> { ["prefixlen"] = length, ["addr"] = prefix },
                new Dictionary<string, object> { ["ifindex"] = ifindex, ["nexthop"] = nexthop }));
        }
        return new StageSetup(entries, new Dictionary<string, long>()) { Canaries = Canaries(accepted) };
    }

    private sealed record Route(IPAddress Prefix, int Length, int Ifindex);

    // A few routes checked end to end before a generation goes live: a packet from the first address of the
    // prefix (or the one after it, when that is the unspecified ::) must go where the longest matching route says.
    private static List<CanaryPacket> Canaries(List<Route> routes)
    {
        const int MaxCanaries = 4;
        var canaries = new List<CanaryPacket>();
        foreach (var route in routes.Take(MaxCanaries))
        {
            var bytes = route.Prefix.GetAddressBytes();
            if (bytes.All(b => b == 0))
                bytes[15] = 1;
            var source = new IPAddress(bytes);
            var best = routes.Where(r => Contains(r, bytes)).MaxBy(r => r.Length)!;
            canaries.Add(new CanaryPacket($"route {route.Prefix}/{route.Length}",
                CanaryFrames.Ipv6Udp(source, CanaryDestination), CanaryVerdict.Redirect, best.Ifindex));
        }
        return canaries;
    }

    private static bool Contains(Route route, byte[] address) => Masked(address, route.Length).AsSpan().SequenceEqual(route.Prefix.GetAddressBytes());

    private static byte[] Masked(byte[] address, int length)
    {
        var masked = (byte[])address.Clone();
        for (int bit = length; bit < 128; bit++)
            masked[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        return masked;
    }

    private static bool TryParsePrefix(SettingsNode node, IStageContext context, out IPAddress prefix, out int length)
    {
        prefix = IPAddress.IPv6None;
        length = 0;
        if (node.Kind != SettingsKind.Scalar)
        {
            context.Error(node, "missing source prefix (e.g. 2001:db8:1::/48)");
            return false;
        }
        string text = node.Scalar!;
        int slash = text.IndexOf('/'); // a bare address is a /128
        length = 128;
        if (!IPAddress.TryParse(slash < 0 ? text : text[..slash], out var address) || address.AddressFamily != AddressFamily.InterNetworkV6
            || address.ScopeId != 0 || text.Contains('%') || (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), System.Globalization.NumberStyles.None, null, out length) || length > 128)))
        {
            context.Error(node, text.Contains('.') && !text.Contains(':')
                ? $"invalid prefix '{text}': the IPv6 plugin routes IPv6 sources (use SourcePolicy for IPv4)"
                : $"invalid prefix '{text}': expected an IPv6 CIDR such as 2001:db8:1::/48");
            return false;
        }
        var masked = new IPAddress(Masked(address.GetAddressBytes(), length));
        if (!masked.Equals(address))
        {
            // Silently masking would route a different set of sources than the operator wrote.
            context.Error(node, $"invalid prefix '{text}': host bits are set (did you mean {masked}/{length}?)");
            return false;
        }
        if (WithinScoped(address.GetAddressBytes(), length))
        {
            context.Error(node, $"invalid prefix '{text}': link-local and multicast sources are never routed");
            return false;
        }
        prefix = address;
        return true;
    }

    // Inside multicast (ff00::/8) or link-local (fe80::/10) space.
    private static bool WithinScoped(byte[] prefix, int length) =>
        (length >= 8 && prefix[0] == 0xff) || (length >= 10 && prefix[0] == 0xfe && (prefix[1] & 0xc0) == 0x80);

    private static bool TryParseNextHop(SettingsNode node, IStageContext context, out IPAddress nexthop)
    {
        nexthop = IPAddress.IPv6Any; // ::: resolve the packet's own destination
        if (node.IsMissing)
            return true;
        if (node.Kind != SettingsKind.Scalar || !IPAddress.TryParse(node.Scalar, out var parsed) || parsed.AddressFamily != AddressFamily.InterNetworkV6)
        {
            context.Error(node, $"invalid next hop '{node.Scalar}': expected an IPv6 address such as fe80::2 or 2001:db8::2");
            return false;
        }
        if (parsed.ScopeId != 0 || node.Scalar!.Contains('%'))
        {
            context.Error(node, $"invalid next hop '{node.Scalar}': no zone index (the route's interface is the zone)");
            return false;
        }
        if (parsed.Equals(IPAddress.IPv6Any) || parsed.IsIPv6Multicast)
        {
            context.Error(node, $"invalid next hop '{node.Scalar}': must be a unicast address");
            return false;
        }
        nexthop = parsed;
        return true;
    }
}
