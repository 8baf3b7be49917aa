using System.Buffers.Binary;
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

    /// <summary>Routes per stage (the trie allocates per entry, so capacity costs nothing until used).</summary>
    public const int MaxRoutes = 1 << 20;
    private static readonly IPAddress CanaryDestination = IPAddress.Parse("2001:db8:ffff::1");

    public string Name => "IPv6";

    public string Description => "Route IPv6 packets by source prefix (longest match) to an interface and next hop.";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(Ipv6PolicyPlugin).Assembly, "ipv6_policy.c.sbn");

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        new MapSchema(RoutesMap, MapKind.LpmTrie,
            Key: [new Field("prefixlen", FieldType.U32), new Field("addr", FieldType.Ipv6)],
            Value: [new Field("ifindex", FieldType.U32), new Field("nexthop", FieldType.Ipv6)],
            MaxEntries: MaxRoutes),
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
        new("route6", "list", "Show the IPv6 routes in effect (not those of a routes file)", "routes", "from", RuntimeAction.List, []),
        new("route6", "load", "Use a routes file: one 'PREFIX INTERFACE [VIA]' per line, for large tables", "routesFile", "file", RuntimeAction.Set,
            [new("file", "path of the routes file", IsPath: true)]),
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
        settings.RejectUnknownKeys(context, "routes", "routesFile");
        var routes = settings["routes"];
        if (!routes.IsMissing && routes.Kind != SettingsKind.Sequence)
        {
            context.Error(routes, "expected a list of routes");
            return StageSetup.Empty;
        }

        var entries = new List<MapEntry>();
        var seen = new Dictionary<(IPAddress, int), string>();
        var accepted = new List<Route>();
        var fileLines = new Dictionary<(UInt128, int), (int Line, int Ifindex)>();
        var file = settings["routesFile"].IsMissing ? null : LoadRoutesFile(settings["routesFile"], context, fileLines);
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
            if (fileLines.TryGetValue((Number(prefix), length), out var fileRoute))
            {
                context.Error(route["from"], $"duplicate prefix {prefix}/{length} (also in the routes file, line {fileRoute.Line})");
                continue;
            }
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
        if (entries.Count + (file?.Count ?? 0) > MaxRoutes)
            context.Error(file is null ? routes : settings["routesFile"], $"{entries.Count + (file?.Count ?? 0):N0} routes: at most {MaxRoutes:N0} per stage");
        return new StageSetup(entries, new Dictionary<string, long>())
        {
            Canaries = Canaries(accepted, fileLines),
            Tables = file is null ? [] : [file],
        };
    }

    private static UInt128 Number(IPAddress address) => BinaryPrimitives.ReadUInt128BigEndian(address.GetAddressBytes());

    // Large tables: one route per line, "PREFIX INTERFACE [VIA]", '#' starts a comment; the same checks as
    // 'routes'. Every bad line is reported with its line number (up to 20, then a count); a bad file applies nothing.
    private static EntryTable? LoadRoutesFile(SettingsNode node, IStageContext context, Dictionary<(UInt128, int), (int Line, int Ifindex)> lines)
    {
        if (node.Kind != SettingsKind.Scalar)
        {
            context.Error(node, "expected the path of a routes file");
            return null;
        }
        string path = context.ResolvePath(node.Scalar!);
        if (!File.Exists(path))
        {
            context.Error(node, $"routes file '{path}' does not exist");
            return null;
        }
        var table = new EntryTable(RoutesMap, ["prefixlen", "addr.hi", "addr.lo"], ["ifindex", "nexthop.hi", "nexthop.lo"], capacity: 1024);
        var interfaces = new Dictionary<string, int>();
        int errors = 0, number = 0;
        void Bad(string message)
        {
            if (++errors <= 20)
                context.Error(node, $"{path}:{number}: {message}");
        }
        Span<Range> parts = stackalloc Range[4];
        foreach (var raw in File.ReadLines(path))
        {
            number++;
            var line = raw.AsSpan();
            int hash = line.IndexOf('#');
            if (hash >= 0)
                line = line[..hash];
            int count = line.SplitAny(parts, " \t", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (count == 0)
                continue;
            if (count is < 2 or > 3)
            {
                Bad($"expected 'PREFIX INTERFACE [VIA]', got '{raw.Trim()}'");
                continue;
            }
            if (PrefixProblem(line[parts[0]].ToString(), out var prefix, out int length) is { } problem)
            {
                Bad(problem);
                continue;
            }
            string name = line[parts[1]].ToString();
            if (!interfaces.TryGetValue(name, out var ifindex))
            {
                if (!context.TryResolveInterface(name, out int resolved, out string ifError))
                {
                    Bad(ifError);
                    continue;
                }
                interfaces[name] = ifindex = resolved;
            }
            var via = IPAddress.IPv6Any;
            if (count == 3 && NextHopProblem(line[parts[2]].ToString(), out via) is { } hopProblem)
            {
                Bad(hopProblem);
                continue;
            }
            UInt128 network = Number(prefix), nexthop = Number(via);
            if (!lines.TryAdd((network, length), (number, ifindex)))
            {
                Bad($"duplicate prefix {prefix}/{length} (first given at line {lines[(network, length)].Line})");
                continue;
            }
            table.Add([(ulong)length, (ulong)(network >> 64), (ulong)network], [(ulong)ifindex, (ulong)(nexthop >> 64), (ulong)nexthop]);
        }
        if (errors > 20)
            context.Error(node, $"{path}: {errors - 20} more bad lines");
        return table;
    }

    private sealed record Route(IPAddress Prefix, int Length, int Ifindex);

    // A few routes checked end to end before a generation goes live: a packet from the first address of the
    // prefix (or the one after it, when that is the unspecified ::) must go where the longest matching route says.
    private static List<CanaryPacket> Canaries(List<Route> routes, Dictionary<(UInt128, int), (int Line, int Ifindex)> file)
    {
        const int MaxCanaries = 4;
        var canaries = new List<CanaryPacket>();
        foreach (var route in routes.Take(MaxCanaries))
        {
            var bytes = route.Prefix.GetAddressBytes();
            if (bytes.All(b => b == 0))
                bytes[15] = 1;
            var source = new IPAddress(bytes);
            // Where the longest match sends it: an inline route, or a longer prefix of the routes file.
            var best = routes.Where(r => Contains(r, bytes)).MaxBy(r => r.Length)!;
            int ifindex = best.Ifindex;
            UInt128 number = Number(source);
            for (int l = 128; l > best.Length; l--)
                if (file.TryGetValue((Mask(number, l), l), out var fromFile))
                {
                    ifindex = fromFile.Ifindex;
                    break;
                }
            canaries.Add(new CanaryPacket($"route {route.Prefix}/{route.Length}",
                CanaryFrames.Ipv6Udp(source, CanaryDestination), CanaryVerdict.Redirect, ifindex));
        }
        return canaries;
    }

    private static UInt128 Mask(UInt128 address, int length) => length == 0 ? UInt128.Zero : address & (UInt128.MaxValue << (128 - length));

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
        if (PrefixProblem(node.Scalar!, out prefix, out length) is { } problem)
        {
            context.Error(node, problem);
            return false;
        }
        return true;
    }

    // What is wrong with an IPv6 source prefix (a bare address is a /128), or null.
    private static string? PrefixProblem(string text, out IPAddress prefix, out int length)
    {
        prefix = IPAddress.IPv6None;
        int slash = text.IndexOf('/');
        length = 128;
        string lengthText = slash < 0 ? "128" : text[(slash + 1)..];
        // Strict: no [brackets], :port, %zone, or length with leading zeros, which IPAddress and int would accept.
        if (text.IndexOfAny(['[', ']', '%']) >= 0 || !IPAddress.TryParse(slash < 0 ? text : text[..slash], out var address)
            || address.AddressFamily != AddressFamily.InterNetworkV6 || lengthText.Length is 0 or > 3 || (lengthText.Length > 1 && lengthText[0] == '0')
            || !int.TryParse(lengthText, System.Globalization.NumberStyles.None, null, out length) || length > 128)
        {
            return text.Contains('.') && !text.Contains(':')
                ? $"invalid prefix '{text}': the IPv6 plugin routes IPv6 sources (use SourcePolicy for IPv4)"
                : $"invalid prefix '{text}': expected an IPv6 CIDR such as 2001:db8:1::/48";
        }
        var masked = new IPAddress(Masked(address.GetAddressBytes(), length));
        // Silently masking would route a different set of sources than the operator wrote.
        if (!masked.Equals(address))
            return $"invalid prefix '{text}': host bits are set (did you mean {masked}/{length}?)";
        if (WithinScoped(address.GetAddressBytes(), length))
            return $"invalid prefix '{text}': link-local, multicast and unspecified sources are never routed";
        prefix = address;
        return null;
    }

    // Inside multicast (ff00::/8) or link-local (fe80::/10) space, or the unspecified address: never routed (ph_ipv6_scoped).
    private static bool WithinScoped(byte[] prefix, int length) =>
        (length >= 8 && prefix[0] == 0xff) || (length >= 10 && prefix[0] == 0xfe && (prefix[1] & 0xc0) == 0x80)
        || (length == 128 && prefix.All(b => b == 0));

    private static bool TryParseNextHop(SettingsNode node, IStageContext context, out IPAddress nexthop)
    {
        nexthop = IPAddress.IPv6Any; // ::: resolve the packet's own destination
        if (node.IsMissing)
            return true;
        if (NextHopProblem(node.Scalar ?? "", out nexthop) is { } problem)
        {
            context.Error(node, problem);
            return false;
        }
        return true;
    }

    // What is wrong with a next hop (link-local allowed, the route's interface being its zone), or null.
    private static string? NextHopProblem(string text, out IPAddress nexthop)
    {
        nexthop = IPAddress.IPv6Any;
        if (text.IndexOfAny(['[', ']']) >= 0 || !IPAddress.TryParse(text, out var parsed) || parsed.AddressFamily != AddressFamily.InterNetworkV6)
            return $"invalid next hop '{text}': expected an IPv6 address such as fe80::2 or 2001:db8::2";
        if (parsed.ScopeId != 0 || text.Contains('%'))
            return $"invalid next hop '{text}': no zone index (the route's interface is the zone)";
        if (parsed.Equals(IPAddress.IPv6Any) || parsed.IsIPv6Multicast)
            return $"invalid next hop '{text}': must be a unicast address";
        nexthop = parsed;
        return null;
    }
}
