using System.Globalization;
using PluginHost.Contract;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.LoadBalancer;

/// <summary>
/// Load balancing over next hops: packets to a service prefix (longest match) are spread over that service's
/// next hops (interface and gateway, weighted) by a hash of the flow (or of the source alone), so each flow
/// keeps one path with no per-flow state, and fragments follow their datagram. For multi-homed hosts and
/// routers that share traffic to a destination over several uplinks or gateways.
/// </summary>
/// <example>
/// settings:
///   services:
///     - to: 198.18.9.0/24
///       hash: flow
///       nexthops:
///         - interface: up1
///           via: 198.18.2.2
///           weight: 2
///         - interface: up2
///           via: 198.18.3.2
/// </example>
public sealed class LoadBalancerPlugin : IRoutingPlugin
{
    /// <summary>Slots per service: the share of a next hop is its weight's share of these (a power of two).</summary>
    public const int Slots = 256;
    public const int MaxServices = 64;
    public const int MaxNextHops = 16;
    public const int MaxWeight = 100;

    private const string ServicesMap = "services";
    private const string SlotsMap = "slots";
    private const int MaxCanaries = 4;
    private const uint CanarySource = 0xC000020A; // 192.0.2.10

    public string Name => "LoadBalancer";

    public string Description => "Spread flows to a destination prefix over weighted next hops by a flow hash (no per-flow state).";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(LoadBalancerPlugin).Assembly, "load_balancer.c.sbn");

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        new MapSchema(ServicesMap, MapKind.LpmTrie,
            Key: [new Field("prefixlen", FieldType.U32), new Field("addr", FieldType.Ipv4)],
            Value: [new Field("group", FieldType.U32), new Field("by_source", FieldType.U32)],
            MaxEntries: MaxServices),
        new MapSchema(SlotsMap, MapKind.Array,
            Key: [new Field("slot", FieldType.U32)],
            Value: [new Field("ifindex", FieldType.U32), new Field("nexthop", FieldType.Ipv4)],
            MaxEntries: MaxServices * Slots),
    ];

    /// <param name="Interface">As configured (a withdrawn next hop has ifindex 0).</param>
    private sealed record NextHop(string Interface, int Ifindex, uint Via, int Weight);

    private sealed record Service(uint Network, int Length, bool BySource, NextHop[] Table);

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        var constants = new Dictionary<string, long> { ["slots"] = Slots };
        if (settings.IsMissing)
            return new StageSetup([], constants);
        if (settings.Kind != SettingsKind.Mapping)
        {
            context.Error(settings, "expected a mapping with 'services'");
            return new StageSetup([], constants);
        }
        settings.RejectUnknownKeys(context, "services");
        var list = settings["services"];
        if (!list.IsMissing && list.Kind != SettingsKind.Sequence)
        {
            context.Error(list, "expected a list of services");
            return new StageSetup([], constants);
        }
        if (list.Items.Count > MaxServices)
            context.Error(list, $"{list.Items.Count} services: at most {MaxServices} per stage");

        var services = new List<Service>();
        var seen = new Dictionary<(uint, int), string>();
        foreach (var node in list.Items.Take(MaxServices))
        {
            if (Parse(node, context) is not { } service)
                continue;
            if (!seen.TryAdd((service.Network, service.Length), node["to"].Path))
            {
                context.Error(node["to"], $"duplicate service {Ipv4Text.ToAddress(service.Network)}/{service.Length} (first given at {seen[(service.Network, service.Length)]})");
                continue;
            }
            services.Add(service);
        }

        var entries = new List<MapEntry>();
        for (int group = 0; group < services.Count; group++)
        {
            var s = services[group];
            entries.Add(new MapEntry(ServicesMap,
                new Dictionary<string, object> { ["prefixlen"] = s.Length, ["addr"] = Ipv4Text.ToAddress(s.Network) },
                new Dictionary<string, object> { ["group"] = group, ["by_source"] = s.BySource ? 1 : 0 }));
            for (int slot = 0; slot < Slots; slot++)
                entries.Add(new MapEntry(SlotsMap,
                    new Dictionary<string, object> { ["slot"] = group * Slots + slot },
                    new Dictionary<string, object> { ["ifindex"] = s.Table[slot].Ifindex, ["nexthop"] = Ipv4Text.ToAddress(s.Table[slot].Via) }));
        }
        return new StageSetup(entries, constants) { Canaries = Canaries(services) };
    }

    /// <summary>
    /// Which next hop a flow takes: the datapath's computation in C# (longest service prefix, then the slot its hash
    /// picks). Null when no service covers the destination.
    /// </summary>
    private static NextHop? Route(List<Service> services, uint source, uint destination, byte protocol, ushort sport, ushort dport)
    {
        var service = services.Where(s => Ipv4Text.Mask(destination, s.Length) == s.Network).MaxBy(s => s.Length);
        if (service is null)
            return null;
        uint hash = service.BySource ? FlowHash.Mix(source) : FlowHash.Flow(source, destination, protocol, sport, dport);
        return service.Table[hash & (Slots - 1)];
    }

    private static List<CanaryPacket> Canaries(List<Service> services)
    {
        var canaries = new List<CanaryPacket>();
        foreach (var service in services.Take(MaxCanaries))
            for (ushort sport = 40000; sport < 40002; sport++)
            {
                uint destination = service.Length == 32 ? service.Network : service.Network | 1;
                var hop = Route(services, CanarySource, destination, 17, sport, 9)!;
                // Every next hop withdrawn: the service's packets go to the kernel.
                canaries.Add(new CanaryPacket($"service {Ipv4Text.ToAddress(service.Network)}/{service.Length}, flow from port {sport}",
                    CanaryFrames.Ipv4Udp(Ipv4Text.ToAddress(CanarySource), Ipv4Text.ToAddress(destination), sport, 9),
                    hop.Ifindex == 0 ? CanaryVerdict.Pass : CanaryVerdict.Redirect, hop.Ifindex));
            }
        return canaries;
    }

    private static Service? Parse(SettingsNode node, IStageContext context)
    {
        if (node.Kind != SettingsKind.Mapping)
        {
            context.Error(node, "expected a service with 'to', 'nexthops' and optionally 'hash'");
            return null;
        }
        node.RejectUnknownKeys(context, "to", "hash", "nexthops");
        bool ok = true;
        uint network = 0;
        int length = 0;
        if (node["to"].IsMissing)
        {
            context.Error(node["to"], "missing destination prefix (e.g. 198.18.9.0/24)");
            ok = false;
        }
        else
            ok = Prefixes.TryParseIpv4(node["to"], context, "expected an IPv4 CIDR such as 198.18.9.0/24", out network, out length);
        bool bySource = false;
        var hash = node["hash"];
        if (!hash.IsMissing && hash.Scalar is not ("flow" or "source"))
        {
            context.Error(hash, $"invalid hash '{hash.Scalar}': expected flow (addresses, protocol and ports) or source (the source address alone)");
            ok = false;
        }
        else
        {
            bySource = hash.Scalar == "source";
        }
        var hops = node["nexthops"];
        var parsed = new List<NextHop>();
        if (hops.Kind != SettingsKind.Sequence || hops.Items.Count == 0)
        {
            context.Error(hops, "expected a list of next hops (1 to 16), each with 'interface' and optionally 'via' and 'weight'");
            return null;
        }
        if (hops.Items.Count > MaxNextHops)
        {
            context.Error(hops, $"{hops.Items.Count} next hops: at most {MaxNextHops} per service");
            ok = false;
        }
        var hopPaths = new Dictionary<(string, uint), string>();
        foreach (var hop in hops.Items)
        {
            if (ParseHop(hop, context) is not { } h)
            {
                ok = false;
                continue;
            }
            if (!hopPaths.TryAdd((h.Interface, h.Via), hop.Path))
            {
                context.Error(hop, $"duplicate next hop (same interface and via as {hopPaths[(h.Interface, h.Via)]})");
                ok = false;
                continue;
            }
            parsed.Add(h);
        }
        return ok ? new Service(network, length, bySource, Fill(parsed)) : null;
    }

    private static NextHop? ParseHop(SettingsNode hop, IStageContext context)
    {
        if (hop.Kind != SettingsKind.Mapping)
        {
            context.Error(hop, "expected a next hop with 'interface' and optionally 'via' and 'weight'");
            return null;
        }
        hop.RejectUnknownKeys(context, "interface", "via", "weight");
        bool hopOk = NextHops.TryParseIpv4(hop["via"], context, out uint via);
        int ifindex = 0;
        bool ok = hopOk && Interfaces.TryResolve(context, hop["interface"], via == 0 ? null : Ipv4Text.ToAddress(via), hop["via"], out ifindex);
        int weight = 1;
        if (!hop["weight"].IsMissing && (!int.TryParse(hop["weight"].Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out weight) || weight is < 1 or > MaxWeight))
        {
            context.Error(hop["weight"], $"invalid weight '{hop["weight"].Scalar}': expected a whole number from 1 to {MaxWeight}");
            ok = false;
        }
        return ok ? new NextHop(hop["interface"].Scalar!, ifindex, via, weight) : null;
    }

    // Smooth weighted round-robin over the slots: each next hop gets its weight's share (to within one slot),
    // interleaved rather than in blocks, and the same weights always give the same table. The slots of withdrawn next hops
    // (ifindex 0: interface missing or down) are shared out the same way among the others, so flows on those keep their
    // path; with every next hop withdrawn, the service's packets go to the kernel.
    private static NextHop[] Fill(List<NextHop> hops)
    {
        var table = Spread(hops);
        var live = hops.Where(h => h.Ifindex != 0).ToList();
        if (live.Count == 0 || live.Count == hops.Count)
            return table;
        var spare = Spread(live, table.Count(h => h.Ifindex == 0));
        for (int slot = 0, next = 0; slot < table.Length; slot++)
            if (table[slot].Ifindex == 0)
                table[slot] = spare[next++];
        return table;
    }

    private static NextHop[] Spread(List<NextHop> hops, int slots = Slots)
    {
        var table = new NextHop[slots];
        var current = new long[hops.Count];
        long total = hops.Sum(h => (long)h.Weight);
        for (int slot = 0; slot < slots; slot++)
        {
            int best = 0;
            for (int i = 0; i < hops.Count; i++)
            {
                current[i] += hops[i].Weight;
                if (current[i] > current[best])
                    best = i;
            }
            current[best] -= total;
            table[slot] = hops[best];
        }
        return table;
    }
}
