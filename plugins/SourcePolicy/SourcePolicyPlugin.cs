using System.Net;
using PluginHost.Contract;

namespace PluginHost.Plugins.SourcePolicy;

/// <summary>
/// Source-based policy routing: packets whose IPv4 source falls in a configured prefix leave by
/// that route's interface and next hop (longest prefix wins); everything else follows the kernel.
/// </summary>
/// <example>
/// settings:
///   routes:
///     - from: 198.18.1.16/28
///       interface: up2
///       via: 198.18.3.2
/// </example>
public sealed class SourcePolicyPlugin : IRoutingPlugin, IRuntimeCommands
{
    private const string RoutesMap = "routes";

    /// <summary>Routes per stage (the trie allocates per entry, so capacity costs nothing until used).</summary>
    public const int MaxRoutes = 1 << 20;

    public string Name => "SourcePolicy";

    public string Description => "Route IPv4 packets by source prefix (longest match) to an interface and next hop.";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(SourcePolicyPlugin).Assembly, "source_policy.c.sbn");

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        new MapSchema(RoutesMap, MapKind.LpmTrie,
            Key: [new Field("prefixlen", FieldType.U32), new Field("addr", FieldType.Ipv4)],
            Value: [new Field("ifindex", FieldType.U32), new Field("nexthop", FieldType.Ipv4)],
            MaxEntries: MaxRoutes),
    ];

    public IReadOnlyList<RuntimeCommand> Commands { get; } =
    [
        new("route", "add", "Add or replace a source route", "routes", "from", RuntimeAction.Add,
        [
            new("from", "source prefix, e.g. 198.18.1.0/24"),
            new("interface", "output interface"),
            new("via", "next hop (default: the packet's destination)", Required: false),
        ]),
        new("route", "del", "Remove the source route for a prefix", "routes", "from", RuntimeAction.Remove,
            [new("from", "source prefix of the route to remove")]),
        new("route", "list", "Show the routes in effect (not those of a routes file)", "routes", "from", RuntimeAction.List, []),
        new("route", "load", "Use a routes file: one 'PREFIX INTERFACE [VIA]' per line, for large tables", "routesFile", "file", RuntimeAction.Set,
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
        var seen = new Dictionary<(uint, int), string>();
        var accepted = new Dictionary<(uint Prefix, int Length), int>(); // → ifindex
        var (file, fileLines) = settings["routesFile"].IsMissing ? (null, FileRoutes.Empty) : RoutesFile(settings["routesFile"], context);
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
            var key = (Number(prefix), length);
            if (fileLines.TryGetValue(key, out var fileRoute))
            {
                context.Error(route["from"], $"duplicate prefix {prefix}/{length} (also in the routes file, line {fileRoute.Line})");
                continue;
            }
            if (seen.TryGetValue(key, out var firstPath))
            {
                context.Error(route["from"], $"duplicate prefix {prefix}/{length} (first given at {firstPath})");
                continue;
            }
            seen[key] = route["from"].Path;
            accepted[key] = ifindex;
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

    // A few routes checked end to end before a generation goes live: a packet from the first address of
    // the prefix must go where the longest matching route says, the routes file's included (TTL 64, so
    // ingress forwards it).
    private static List<CanaryPacket> Canaries(Dictionary<(uint Prefix, int Length), int> routes, FileRoutes file)
    {
        const int MaxCanaries = 4;
        var canaries = new List<CanaryPacket>();
        foreach (var ((prefix, length), _) in routes.Take(MaxCanaries))
        {
            int best = 0;
            for (int l = 32; l >= length && best == 0; l--)
                best = routes.TryGetValue((Ipv4Text.Mask(prefix, l), l), out int inline) ? inline
                    : file.TryGetValue((Ipv4Text.Mask(prefix, l), l), out var fromFile) ? fromFile.Ifindex : 0;
            canaries.Add(new CanaryPacket($"route {Ipv4Text.ToAddress(prefix)}/{length}",
                CanaryFrames.Ipv4Udp(Ipv4Text.ToAddress(prefix), IPAddress.Parse("192.0.2.1")), CanaryVerdict.Redirect, best));
        }
        return canaries;
    }

    private static uint Number(IPAddress address) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(address.GetAddressBytes());

    // A routes file's prefixes: (network, length) → the line that gave it and its interface.
    private sealed class FileRoutes : Dictionary<(uint, int), (int Line, int Ifindex)>
    {
        public static readonly FileRoutes Empty = [];
    }

    // Routes files read without errors, by path: while a file (size, time) and the interfaces it names are
    // unchanged, the same table is handed back, so a runtime route change does not re-read a million lines (and
    // the host, seeing the same table, does not encode it again).
    private sealed record ParsedFile(long Length, DateTime Written, Dictionary<string, int> Interfaces, EntryTable Table, FileRoutes Lines);

    private const int MaxParsedFiles = 8;
    private readonly Dictionary<string, ParsedFile> _parsedFiles = [];
    private readonly Lock _fileLock = new();

    private (EntryTable? Table, FileRoutes Lines) RoutesFile(SettingsNode node, IStageContext context)
    {
        if (node.Kind != SettingsKind.Scalar)
        {
            context.Error(node, "expected the path of a routes file");
            return (null, FileRoutes.Empty);
        }
        // Taken before reading: a file rewritten while it is read is read again next time.
        var info = new FileInfo(context.ResolvePath(node.Scalar!));
        if (!info.Exists)
        {
            context.Error(node, $"routes file '{info.FullName}' does not exist");
            return (null, FileRoutes.Empty);
        }
        ParsedFile? last;
        lock (_fileLock)
            last = _parsedFiles.GetValueOrDefault(info.FullName);
        if (last is not null && info.Length == last.Length && info.LastWriteTimeUtc == last.Written
            && last.Interfaces.All(i => context.TryResolveInterface(i.Key, out int ifindex, out _) && ifindex == i.Value))
            return (last.Table, last.Lines);
        var interfaces = new Dictionary<string, int>();
        var lines = new FileRoutes();
        var (table, clean) = LoadRoutesFile(node, info.FullName, context, lines, interfaces);
        if (clean)
            lock (_fileLock)
            {
                if (_parsedFiles.Count >= MaxParsedFiles)
                    _parsedFiles.Clear();
                _parsedFiles[info.FullName] = new ParsedFile(info.Length, info.LastWriteTimeUtc, interfaces, table, lines);
            }
        return (table, lines);
    }

    // Large tables: one route per line, "PREFIX INTERFACE [VIA]", '#' starts a comment. Every bad line is reported
    // with its line number (up to 20, then a count), and a bad file applies nothing. Parsed on spans: this runs
    // a million times for a full table.
    // Returns the table and whether every line was good.
    private static (EntryTable Table, bool Clean) LoadRoutesFile(SettingsNode node, string path, IStageContext context, FileRoutes lines,
        Dictionary<string, int> interfaces)
    {
        var table = new EntryTable(RoutesMap, ["prefixlen", "addr"], ["ifindex", "nexthop"], capacity: 1024);
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
            if (!Ipv4Text.TryParsePrefix(line[parts[0]], out uint address, out int length))
            {
                Bad($"invalid prefix '{line[parts[0]]}'");
                continue;
            }
            uint prefix = Ipv4Text.Mask(address, length);
            if (prefix != address)
            {
                Bad($"invalid prefix '{line[parts[0]]}': host bits are set (did you mean {Ipv4Text.ToAddress(prefix)}/{length}?)");
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
            uint via = 0;
            if (count == 3 && (!Ipv4Text.TryParse(line[parts[2]], out via) || !Ipv4Text.IsUnicast(via)))
            {
                Bad($"invalid next hop '{line[parts[2]]}': expected a unicast IPv4 address");
                continue;
            }
            if (!lines.TryAdd((prefix, length), (number, ifindex)))
            {
                Bad($"duplicate prefix {Ipv4Text.ToAddress(prefix)}/{length} (first given at line {lines[(prefix, length)].Line})");
                continue;
            }
            table.Add([(ulong)length, prefix], [(ulong)ifindex, via]);
        }
        if (errors > 20)
            context.Error(node, $"{path}: {errors - 20} more bad lines");
        return (table, errors == 0);
    }

    private static bool TryParsePrefix(SettingsNode node, IStageContext context, out IPAddress prefix, out int length)
    {
        prefix = IPAddress.None;
        length = 0;
        if (node.Kind != SettingsKind.Scalar)
        {
            context.Error(node, "missing source prefix (e.g. 198.18.1.0/24)");
            return false;
        }
        string text = node.Scalar!;
        if (!Ipv4Text.TryParsePrefix(text, out var address, out int bits))
        {
            context.Error(node, text.Contains(':')
                ? $"invalid prefix '{text}': SourcePolicy routes IPv4 sources (use the IPv6 plugin for IPv6)"
                : $"invalid prefix '{text}': expected an IPv4 CIDR such as 198.18.1.0/24");
            return false;
        }
        var network = new IPNetwork(Ipv4Text.ToAddress(Ipv4Text.Mask(Number(address), bits)), bits);
        if (!network.BaseAddress.Equals(address))
        {
            // Silently masking would route a different set of sources than the operator wrote.
            context.Error(node, $"invalid prefix '{text}': host bits are set (did you mean {network}?)");
            return false;
        }
        prefix = network.BaseAddress;
        length = network.PrefixLength;
        return true;
    }

    private static bool TryParseNextHop(SettingsNode node, IStageContext context, out IPAddress nexthop)
    {
        nexthop = IPAddress.Any; // 0.0.0.0: resolve the packet's own destination
        if (node.IsMissing)
            return true;
        if (node.Kind != SettingsKind.Scalar || !Ipv4Text.TryParseAddress(node.Scalar, out var parsed))
        {
            context.Error(node, $"invalid next hop '{node.Scalar}': expected an IPv4 address such as 198.18.3.2");
            return false;
        }
        if (!Ipv4Text.IsUnicast(Number(parsed)))
        {
            context.Error(node, $"invalid next hop '{node.Scalar}': must be a unicast address");
            return false;
        }
        nexthop = parsed;
        return true;
    }

}
