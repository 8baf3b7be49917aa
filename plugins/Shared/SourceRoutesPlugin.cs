using PluginHost.Contract;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// Source-based policy routing of one address family: SourcePolicy (IPv4) and IPv6 are this plugin with their own
/// name, template and family; settings (routes, a routes file), map layout, runtime commands and canaries are the
/// same. Each plugin instance has its own routes-file cache. (The plugins derive from it, so they are internal too:
/// the host finds a plugin class by reflection, whatever its visibility.)
/// </summary>
internal abstract class SourceRoutesPlugin : IRoutingPlugin, IRuntimeCommands
{
    public const string RoutesMap = "routes";

    /// <summary>Routes per stage (the trie allocates per entry, so capacity costs nothing until used).</summary>
    public const int MaxRoutes = 1 << 20;

    private const int MaxCanaries = 4;

    private readonly RouteFamily _family;
    private readonly RoutesFileCache _files;

    /// <param name="template">The stage template: a resource of the plugin's assembly.</param>
    /// <param name="noun">The runtime commands' noun ("route").</param>
    /// <param name="qualifier">What the help texts put before "source route" ("" or "IPv6 ").</param>
    /// <param name="viaHelp">The help text of the next hop argument.</param>
    protected SourceRoutesPlugin(string template, RouteFamily family, string noun, string qualifier, string viaHelp)
    {
        _family = family;
        Template = StageTemplate.FromResource(GetType().Assembly, template);
        _files = new RoutesFileCache(family, RoutesMap);
        Maps =
        [
            new MapSchema(RoutesMap, MapKind.LpmTrie,
                Key: [new Field("prefixlen", FieldType.U32), new Field("addr", family.AddressType)],
                Value: [new Field("ifindex", FieldType.U32), new Field("nexthop", family.AddressType)],
                MaxEntries: MaxRoutes),
        ];
        string aRoute = qualifier.Length == 0 ? "a source route" : $"an {qualifier}source route";
        Commands =
        [
            new(noun, "add", $"Add or replace {aRoute}", "routes", "from", RuntimeAction.Add,
            [
                new("from", $"{qualifier}source prefix, e.g. {family.ExamplePrefix}"),
                new("interface", "output interface"),
                new("via", viaHelp, Required: false),
            ]),
            new(noun, "del", $"Remove the {qualifier}source route for a prefix", "routes", "from", RuntimeAction.Remove,
                [new("from", $"{qualifier}source prefix of the route to remove")]),
            new(noun, "list", $"Show the {qualifier}routes in effect (not those of a routes file)", "routes", "from", RuntimeAction.List, []),
            new(noun, "load", "Use a routes file: one 'PREFIX INTERFACE [VIA]' per line, for large tables", "routesFile", "file", RuntimeAction.Set,
                [new("file", "path of the routes file", IsPath: true)]),
        ];
    }

    public abstract string Name { get; }

    public abstract string Description { get; }

    public StageTemplate Template { get; }

    public IReadOnlyList<MapSchema> Maps { get; }

    public IReadOnlyList<RuntimeCommand> Commands { get; }

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        if (settings.IsMissing)
            return StageSetup.Empty;
        if (settings.Kind != SettingsKind.Mapping)
        {
            context.Error(settings, "expected a mapping with 'routes'");
            return StageSetup.Empty;
        }
        settings.RejectUnknownKeys(context, "routes", "routesFile", "routesFileMaxBytes");
        long maxBytes = RoutesFileCache.DefaultMaxBytes;
        if (!settings["routesFileMaxBytes"].IsMissing && !RoutesFileCache.TryParseSize(settings["routesFileMaxBytes"], context, out maxBytes))
            return StageSetup.Empty;
        var routes = settings["routes"];
        if (!routes.IsMissing && routes.Kind != SettingsKind.Sequence)
        {
            context.Error(routes, "expected a list of routes");
            return StageSetup.Empty;
        }

        var entries = new List<MapEntry>();
        var seen = new Dictionary<(UInt128, int), string>();
        var accepted = new Dictionary<(UInt128 Network, int Length), int>(); // → ifindex, in the order given
        var (file, fileLines) = settings["routesFile"].IsMissing ? (null, FileRoutes.Empty) : _files.Read(settings["routesFile"], context, maxBytes, MaxRoutes);
        foreach (var route in routes.Items)
        {
            if (route.Kind != SettingsKind.Mapping)
            {
                context.Error(route, "expected a route with 'from', 'interface' and optionally 'via'");
                continue;
            }
            route.RejectUnknownKeys(context, "from", "interface", "via");
            bool ok = TryParsePrefix(route["from"], context, out var network, out int length);
            bool hopOk = TryParseNextHop(route["via"], context, out var nexthop);
            // Missing or down: the route is withdrawn (ifindex 0), not refused. An invalid via is not checked for being on-link.
            int ifindex = 0;
            ok &= hopOk && Interfaces.TryResolve(context, route["interface"], route["via"].IsMissing ? null : _family.ToAddress(nexthop), route["via"], out ifindex);
            if (!ok)
                continue;
            var key = (network, length);
            var prefix = _family.ToAddress(network);
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
                new Dictionary<string, object> { ["ifindex"] = ifindex, ["nexthop"] = _family.ToAddress(nexthop) }));
        }
        int total = entries.Count + (file?.Count ?? 0);
        if (total > MaxRoutes)
            context.Error(file is null ? routes : settings["routesFile"], $"{total:N0} routes: at most {MaxRoutes:N0} per stage");
        return new StageSetup(entries, new Dictionary<string, long>())
        {
            Canaries = Canaries(accepted, fileLines),
            Tables = file is null ? [] : [file],
        };
    }

    // A few routes checked end to end before a generation goes live: a packet from the first address of the prefix must
    // go where the longest matching route says, the routes file's included (TTL 64, so ingress forwards it); a withdrawn
    // route (ifindex 0) passes it to the kernel.
    private List<CanaryPacket> Canaries(Dictionary<(UInt128 Network, int Length), int> routes, FileRoutes file)
    {
        var canaries = new List<CanaryPacket>();
        foreach (var ((network, length), _) in routes.Take(MaxCanaries))
        {
            var source = _family.CanarySource(network);
            int? best = null;
            for (int l = _family.Bits; l >= length && best is null; l--)
            {
                var key = (_family.Mask(source, l), l);
                best = routes.TryGetValue(key, out int inline) ? inline : file.TryGetValue(key, out var fromFile) ? fromFile.Ifindex : null;
            }
            canaries.Add(best is > 0
                ? new CanaryPacket($"route {_family.ToAddress(network)}/{length}", _family.CanaryFrame(source), CanaryVerdict.Redirect, best.Value)
                : new CanaryPacket($"withdrawn route {_family.ToAddress(network)}/{length}", _family.CanaryFrame(source), CanaryVerdict.Pass));
        }
        return canaries;
    }

    private bool TryParsePrefix(SettingsNode node, IStageContext context, out UInt128 network, out int length)
    {
        network = 0;
        length = 0;
        if (node.Kind != SettingsKind.Scalar)
        {
            context.Error(node, $"missing source prefix (e.g. {_family.ExamplePrefix})");
            return false;
        }
        if (_family.PrefixProblem(node.Scalar, inFile: false, out network, out length) is not { } problem)
            return true;
        context.Error(node, problem);
        return false;
    }

    private bool TryParseNextHop(SettingsNode node, IStageContext context, out UInt128 nexthop)
    {
        nexthop = 0; // resolve the packet's own destination
        if (node.IsMissing)
            return true;
        if (_family.NextHopProblem(node.Scalar, inFile: false, out nexthop) is not { } problem)
            return true;
        context.Error(node, problem);
        return false;
    }
}
