using System.Globalization;
using System.Net;
using PluginHost.Contract;
using PluginHost.Plugins.LoadBalancer.Maglev;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.LoadBalancer;

/// <summary>
/// Load balancing over next hops: packets to a service prefix (IPv4 or IPv6, longest match) are spread over that
/// service's backends (interface and gateway of the service's family, weighted 0 to 1,000) by a Maglev table (see
/// Maglev/README.md): entry <c>hash % size</c> of the service's table names the backend. The hash is of the flow
/// (addresses, protocol, ports; fragments without ports) or of the source alone; an IPv6 address enters it as the XOR of
/// its four 32-bit words. No per-flow state is kept: a flow keeps its backend while the backend set is unchanged, and a
/// change moves about the minimum of flows. Weight 0 drains a backend (no entries); a backend whose interface is down
/// or missing is withdrawn the same way. With no backend left, the service's packets go to the kernel (counted as
/// passed). Tables and backends are double-buffered maps, so a changed set is switched in as one.
/// </summary>
/// <example>
/// settings:
///   services:
///     - to: 198.18.9.0/24
///       hash: flow
///       tableSize: 4093
///       nexthops:
///         - interface: up1
///           via: 198.18.2.2
///           weight: 2
///         - interface: up2
///           via: 198.18.3.2
///     - to: 2001:db8:9::/48
///       nexthops:
///         - interface: up1
///           via: fe80::2
/// </example>
public sealed class LoadBalancerPlugin : IRoutingPlugin
{
    public const int MaxServices = 64;
    public const int MaxNextHops = 256;
    public const int MaxWeight = MaglevTable.MaxWeight;

    /// <summary>A service's table size when settings give none and its backends need no more (16 KiB a copy).</summary>
    public const int DefaultTableSize = 4_093;

    /// <summary>The largest table size settings may give a service (Katran's default).</summary>
    public const int MaxTableSize = 65_537;

    private const string Services4 = "services";
    private const string Services6 = "services6";
    private const string RingMap = "ring";
    private const string BackendsMap = "backends";
    private const uint NoBackend = uint.MaxValue;
    private const int MaxCanaries = 4;
    private const uint CanarySource = 0xC000020A; // 192.0.2.10
    private static readonly UInt128 CanarySource6 = UInt128.Parse("20010db8000000000000000000000010", NumberStyles.HexNumber);

    public string Name => "LoadBalancer";

    public string Description => "Spread flows to an IPv4 or IPv6 destination prefix over weighted next hops by a Maglev table (no per-flow state).";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(LoadBalancerPlugin).Assembly, "load_balancer.c.sbn");

    private static readonly Field[] ServiceValue =
        [new Field("base", FieldType.U32), new Field("size", FieldType.U32), new Field("by_source", FieldType.U32)];

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        new MapSchema(Services4, MapKind.LpmTrie, [new Field("prefixlen", FieldType.U32), new Field("addr", FieldType.Ipv4)], ServiceValue, MaxServices)
            { DoubleBuffered = true },
        new MapSchema(Services6, MapKind.LpmTrie, [new Field("prefixlen", FieldType.U32), new Field("addr", FieldType.Ipv6)], ServiceValue, MaxServices)
            { DoubleBuffered = true },
        // The services' Maglev tables one after another (a service's from its base): entry -> backend, 0xFFFFFFFF none.
        new MapSchema(RingMap, MapKind.Array, [new Field("index", FieldType.U32)], [new Field("backend", FieldType.U32)], 4096)
            { DoubleBuffered = true },
        new MapSchema(BackendsMap, MapKind.Array, [new Field("index", FieldType.U32)],
            [new Field("via6", FieldType.Ipv6), new Field("ifindex", FieldType.U32), new Field("via4", FieldType.Ipv4)], MaxNextHops)
            { DoubleBuffered = true },
    ];

    /// <param name="Interface">As configured (a withdrawn next hop has ifindex 0).</param>
    /// <param name="Via">The gateway (IPv4 in the low 32 bits), 0 for the packet's destination.</param>
    private sealed record NextHop(string Interface, int Ifindex, UInt128 Via, int Weight, SettingsNode Node)
    {
        public string Key(bool v6) => $"{Interface} {(v6 ? Ipv6Text.ToAddress(Via) : Ipv4Text.ToAddress((uint)Via))}";
    }

    /// <param name="Network">IPv4 in the low 32 bits.</param>
    private sealed record Service(bool V6, UInt128 Network, int Length, bool BySource, NextHop[] Hops, int[] Table, SettingsNode Node)
    {
        public string Text => V6 ? $"{Ipv6Text.ToAddress(Network)}/{Length}" : $"{Ipv4Text.ToAddress((uint)Network)}/{Length}";
    }

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        var constants = new Dictionary<string, long>();
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
        var seen = new Dictionary<(bool, UInt128, int), string>();
        foreach (var node in list.Items.Take(MaxServices))
        {
            if (Parse(node, context) is not { } service)
                continue;
            if (!seen.TryAdd((service.V6, service.Network, service.Length), node["to"].Path))
            {
                context.Error(node["to"], $"duplicate service {service.Text} (first given at {seen[(service.V6, service.Network, service.Length)]})");
                continue;
            }
            services.Add(service);
        }
        return Setup(services, constants, context);
    }

    private static StageSetup Setup(List<Service> services, Dictionary<string, long> constants, IStageContext context)
    {
        var services4 = new EntryTable(Services4, ["prefixlen", "addr"], ["base", "size", "by_source"], services.Count);
        var services6 = new EntryTable(Services6, ["prefixlen", "addr.hi", "addr.lo"], ["base", "size", "by_source"], services.Count);
        int ringEntries = services.Sum(s => s.Table.Length), backendCount = services.Sum(s => s.Hops.Length);
        var ring = new EntryTable(RingMap, ["index"], ["backend"], ringEntries);
        var backends = new EntryTable(BackendsMap, ["index"], ["via6.hi", "via6.lo", "ifindex", "via4"], backendCount);
        uint ringBase = 0, backendBase = 0;
        foreach (var s in services)
        {
            ulong bySource = s.BySource ? 1UL : 0;
            if (s.V6)
                services6.Add([(ulong)s.Length, (ulong)(s.Network >> 64), (ulong)s.Network], [ringBase, (ulong)s.Table.Length, bySource]);
            else
                services4.Add([(ulong)s.Length, (ulong)s.Network], [ringBase, (ulong)s.Table.Length, bySource]);
            for (int i = 0; i < s.Table.Length; i++)
                ring.Add([ringBase + (ulong)i], [s.Table[i] < 0 ? NoBackend : backendBase + (uint)s.Table[i]]);
            for (int i = 0; i < s.Hops.Length; i++)
            {
                var h = s.Hops[i];
                backends.Add([backendBase + (ulong)i],
                    s.V6 ? [(ulong)(h.Via >> 64), (ulong)h.Via, (ulong)h.Ifindex, 0] : [0, 0, (ulong)h.Ifindex, (ulong)h.Via]);
            }
            WarnEmpty(s, context);
            ringBase += (uint)s.Table.Length;
            backendBase += (uint)s.Hops.Length;
        }
        var sizes = new Dictionary<string, uint>
        {
            [RingMap] = Capacity(ringEntries, 4096),
            [BackendsMap] = Capacity(backendCount, 16),
        };
        long used = ringEntries * 4L + backendCount * 24L;
        long reserved = 2 * (sizes[RingMap] * 4L + sizes[BackendsMap] * 24L);
        int drained = services.Sum(s => s.Hops.Count(h => h.Weight == 0)), withdrawn = services.Sum(s => s.Hops.Count(h => h.Weight > 0 && h.Ifindex == 0));
        string tables = string.Join(", ", services.GroupBy(s => s.Table.Length).OrderBy(g => g.Key).Select(g => $"{g.Count()} of {g.Key:N0}"));
        return new StageSetup([], constants)
        {
            Tables = [services4, services6, ring, backends],
            MapSizes = sizes,
            Canaries = Canaries(services),
            Summary = $"{services.Count} service{(services.Count == 1 ? "" : "s")} ({services.Count(s => s.V6)} IPv6), " +
                      $"{backendCount} backend{(backendCount == 1 ? "" : "s")} ({drained} drained, {withdrawn} withdrawn); " +
                      $"Maglev tables: {(tables.Length == 0 ? "none" : tables)} entries; " +
                      $"{used / 1024.0:F1} KiB of tables, {reserved / 1024.0:F1} KiB reserved (two copies)",
        };
    }

    // A power of two at least n (and at least minimum): a capacity changes in steps, each a new generation.
    private static uint Capacity(int n, int minimum) => (uint)Math.Max(minimum, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, n)));

    // A backend with a weight but no entry in its table gets no flows: its share is below one entry.
    private static void WarnEmpty(Service s, IStageContext context)
    {
        var counts = new int[s.Hops.Length];
        foreach (int b in s.Table)
            if (b >= 0)
                counts[b]++;
        for (int i = 0; i < s.Hops.Length; i++)
            if (s.Hops[i].Weight > 0 && s.Hops[i].Ifindex != 0 && counts[i] == 0)
                context.Warn(s.Hops[i].Node, $"next hop {s.Hops[i].Key(s.V6)} of service {s.Text} gets no entry of its {s.Table.Length:N0}-entry table " +
                                             $"(weight {s.Hops[i].Weight} is too small a share: raise it or the table size)");
    }

    /// <summary>The IPv6 address as the flow hash takes it: the XOR of its four 32-bit words (host order), as the template folds it.</summary>
    internal static uint Fold(UInt128 address) =>
        (uint)(address >> 96) ^ (uint)(address >> 64) ^ (uint)(address >> 32) ^ (uint)address;

    /// <summary>
    /// The flow hash of a packet, as the datapath computes it: <see cref="FlowHash"/> over the addresses (IPv6 folded
    /// by <see cref="Fold"/>), protocol and ports (pass 0 ports for fragments), or of the source alone.
    /// </summary>
    internal static uint Hash(bool v6, bool bySource, UInt128 source, UInt128 destination, byte protocol, ushort sport, ushort dport)
    {
        uint src = v6 ? Fold(source) : (uint)source, dst = v6 ? Fold(destination) : (uint)destination;
        return bySource ? FlowHash.Mix(src) : FlowHash.Flow(src, dst, protocol, sport, dport);
    }

    /// <summary>
    /// Which next hop a flow takes: the datapath's computation in C# (longest service prefix of the family, then the
    /// table entry its hash picks). Null when no service covers the destination; a null hop when no backend is left.
    /// </summary>
    private static (Service Service, NextHop? Hop)? Route(List<Service> services, bool v6, UInt128 source, UInt128 destination, byte protocol, ushort sport, ushort dport)
    {
        var service = services.Where(s => s.V6 == v6 && Covers(s, destination)).MaxBy(s => s.Length);
        if (service is null)
            return null;
        uint hash = Hash(v6, service.BySource, source, destination, protocol, sport, dport);
        int backend = service.Table[(int)(hash % (uint)service.Table.Length)];
        return (service, backend < 0 ? null : service.Hops[backend]);
    }

    private static bool Covers(Service s, UInt128 address) =>
        s.V6 ? Ipv6Text.Mask(address, s.Length) == s.Network : Ipv4Text.Mask((uint)address, s.Length) == (uint)s.Network;

    private static List<CanaryPacket> Canaries(List<Service> services)
    {
        var canaries = new List<CanaryPacket>();
        foreach (var service in services.Take(MaxCanaries))
            for (ushort sport = 40000; sport < 40002; sport++)
            {
                int bits = service.V6 ? 128 : 32;
                var destination = service.Length == bits ? service.Network : service.Network | 1;
                var source = service.V6 ? CanarySource6 : CanarySource;
                var (_, hop) = Route(services, service.V6, source, destination, 17, sport, 9)!.Value;
                var frame = service.V6
                    ? CanaryFrames.Ipv6Udp(Ipv6Text.ToAddress(source), Ipv6Text.ToAddress(destination), sport, 9)
                    : CanaryFrames.Ipv4Udp(Ipv4Text.ToAddress((uint)source), Ipv4Text.ToAddress((uint)destination), sport, 9);
                // No backend left (all drained or withdrawn): the service's packets go to the kernel.
                canaries.Add(new CanaryPacket($"service {service.Text}, flow from port {sport}", frame,
                    hop is null || hop.Ifindex == 0 ? CanaryVerdict.Pass : CanaryVerdict.Redirect, hop?.Ifindex ?? 0));
            }
        return canaries;
    }

    private static Service? Parse(SettingsNode node, IStageContext context)
    {
        if (node.Kind != SettingsKind.Mapping)
        {
            context.Error(node, "expected a service with 'to', 'nexthops' and optionally 'hash' and 'tableSize'");
            return null;
        }
        node.RejectUnknownKeys(context, "to", "hash", "tableSize", "nexthops");
        bool ok = true, v6 = false;
        UInt128 network = 0;
        int length = 0;
        var to = node["to"];
        if (to.IsMissing)
        {
            context.Error(to, "missing destination prefix (e.g. 198.18.9.0/24 or 2001:db8:9::/48)");
            ok = false;
        }
        else if (to.Scalar is { } text && text.Contains(':'))
        {
            v6 = true;
            if (Prefixes.Ipv6Problem(text, "expected an IPv4 or IPv6 CIDR such as 198.18.9.0/24 or 2001:db8:9::/48", out network, out length) is { } problem)
            {
                context.Error(to, problem);
                ok = false;
            }
            else if (Ipv6Text.WithinScoped(network, length))
            {
                context.Error(to, $"invalid prefix '{text}': link-local, multicast and unspecified destinations are never forwarded");
                ok = false;
            }
        }
        else
        {
            ok = Prefixes.TryParseIpv4(to, context, "expected an IPv4 or IPv6 CIDR such as 198.18.9.0/24 or 2001:db8:9::/48", out uint network4, out length);
            network = network4;
        }
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
            context.Error(hops, $"expected a list of next hops (1 to {MaxNextHops}), each with 'interface' and optionally 'via' and 'weight'");
            return null;
        }
        if (hops.Items.Count > MaxNextHops)
        {
            context.Error(hops, $"{hops.Items.Count} next hops: at most {MaxNextHops} per service");
            ok = false;
        }
        var hopPaths = new Dictionary<(string, UInt128), string>();
        foreach (var hop in hops.Items)
        {
            if (ParseHop(hop, v6, ok && !to.IsMissing, context) is not { } h)
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
        int size = Math.Max(DefaultTableSize, MaglevTable.MinimumSize(hops.Items.Count));
        var sizeNode = node["tableSize"];
        if (!sizeNode.IsMissing)
        {
            int minimum = MaglevTable.MinimumSize(hops.Items.Count);
            if (!int.TryParse(sizeNode.Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out size) || size < minimum || size > MaxTableSize || !MaglevTable.IsPrime(size))
            {
                context.Error(sizeNode, $"invalid table size '{sizeNode.Scalar}': expected a prime from {minimum:N0} (64 entries per next hop) to {MaxTableSize:N0}, such as 1021, 4093, 16381 or 65537");
                ok = false;
            }
        }
        if (!ok)
            return null;
        // Withdrawn next hops (interface down or missing) take no entries, as if drained: Maglev gives the others the
        // table they would have without them, so flows on the others keep their path.
        var table = MaglevTable.Build(parsed.Select(h => new MaglevBackend(h.Key(v6), h.Ifindex == 0 ? 0 : h.Weight)).ToList(), size);
        return new Service(v6, network, length, bySource, [.. parsed], table, node);
    }

    // familyKnown: the service's prefix parsed, so a next hop of the other family can be refused at its via.
    private static NextHop? ParseHop(SettingsNode hop, bool v6, bool familyKnown, IStageContext context)
    {
        if (hop.Kind != SettingsKind.Mapping)
        {
            context.Error(hop, "expected a next hop with 'interface' and optionally 'via' and 'weight'");
            return null;
        }
        hop.RejectUnknownKeys(context, "interface", "via", "weight");
        var viaNode = hop["via"];
        bool ok = true;
        UInt128 via = 0;
        IPAddress? viaAddress = null;
        if (!viaNode.IsMissing)
        {
            string text = viaNode.Scalar ?? "";
            bool textV6 = text.Contains(':');
            if (familyKnown && textV6 != v6)
            {
                context.Error(viaNode, $"next hop '{text}' is {(textV6 ? "IPv6" : "IPv4")} but the service is {(v6 ? "IPv6" : "IPv4")} (one family per service)");
                ok = false;
            }
            else if (textV6)
            {
                if (NextHops.Ipv6Problem(text, out via) is { } problem)
                {
                    context.Error(viaNode, problem);
                    ok = false;
                }
                else
                    viaAddress = Ipv6Text.ToAddress(via);
            }
            else if (NextHops.TryParseIpv4(viaNode, context, out uint via4))
            {
                via = via4;
                viaAddress = Ipv4Text.ToAddress(via4);
            }
            else
                ok = false;
        }
        int ifindex = 0;
        ok = ok && Interfaces.TryResolve(context, hop["interface"], viaAddress, viaNode, out ifindex);
        int weight = 1;
        if (!hop["weight"].IsMissing && (!int.TryParse(hop["weight"].Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out weight) || weight > MaxWeight))
        {
            context.Error(hop["weight"], $"invalid weight '{hop["weight"].Scalar}': expected a whole number from 0 (drained) to {MaxWeight:N0}");
            ok = false;
        }
        return ok ? new NextHop(hop["interface"].Scalar!, ifindex, via, weight, hop) : null;
    }
}
