using System.Numerics;
using PluginHost.Contract;
using PluginHost.Plugins.LoadBalancer.Maglev;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.LoadBalancer;

/// <summary>
/// Load balancing over next hops. A service is a destination prefix (IPv4 or IPv6), optionally one protocol and
/// destination port; its backends are next hops (interface and gateway of the service's family) with weights 0 to
/// 1,000. The most specific service that takes a packet serves it (longest prefix, then protocol and port). A new flow
/// takes the backend the service's Maglev table (see Maglev/README.md) names for its hash (of the addresses, protocol
/// and ports, fragments without ports; or of the source alone; an IPv6 address enters it as the XOR of its four 32-bit
/// words) and is recorded in an LRU flow table; later packets of the flow keep that backend while it is up or drained,
/// so adding a backend or changing a weight moves no established flow. A drained backend (weight 0, or listed in
/// <c>drain</c>) takes no new flows and keeps its own; a removed, down (listed in <c>down</c>, or its health probe, run by
/// the host, says down) or withdrawn backend (its interface is down or missing) loses its flows, which pick again. With no backend
/// left, the service's packets go to the kernel, counted per service. Services, tables and backends are double-buffered
/// maps, so a changed set is switched in as one; every runtime verb is map writes.
/// </summary>
/// <example>
/// settings:
///   flowTableSize: 65536
///   services:
///     - name: web
///       to: 198.18.9.0/24
///       protocol: tcp
///       port: 443
///       hash: flow
///       tableSize: 4093
///       probe: { kind: tcp, port: 443, interval: 500ms, failures: 3 }   # its backends' unless they give their own
///       nexthops:
///         - name: web-a
///           interface: up1
///           via: 198.18.2.2
///           weight: 2
///         - interface: up2            # named up2@198.18.3.2 (its probe: up2/198.18.3.2)
///           via: 198.18.3.2
///           probe: icmp
///     - name: v6
///       to: 2001:db8:9::/48
///   backends:                         # apart from their service: what 'backend add' adds to
///     - name: v6-a
///       service: v6
///       interface: up1
///       via: fe80::2
///   weights: [{ name: web-a, weight: 3 }]   # 'backend weight'
///   drain: [{ name: up2@198.18.3.2 }]       # 'backend drain'
/// </example>
internal sealed class LoadBalancerPlugin : IRoutingPlugin, IRuntimeCommands, IMapMigration
{
    public const int MaxServices = 64;
    public const int MaxNextHops = 256;
    public const int MaxWeight = MaglevTable.MaxWeight;

    /// <summary>A service's table size when settings give none and its backends need no more (16 KiB a copy).</summary>
    public const int DefaultTableSize = 4_093;

    /// <summary>The largest table size settings may give a service (Katran's default).</summary>
    public const int MaxTableSize = 65_537;

    /// <summary>Flows the flow table remembers when settings give no size; the least recently used go first.</summary>
    public const int DefaultFlowTableSize = 65_536;
    public const int MinFlowTableSize = 1_024;
    public const int MaxFlowTableSize = 1 << 24;

    /// <summary>The ring's least capacity: four default-sized tables.</summary>
    public const int MinRingCapacity = 16_384;

    /// <summary>Services one packet's longest prefix may have to try (its own and those of covering prefixes).</summary>
    public const int ListMax = 16;

    // Kernel memory of one LRU hash element: key and value rounded to 8 bytes, plus the element's own header (about 48
    // bytes on 64-bit kernels); the table is preallocated whole.
    private const int FlowEntryBytes = 40 + 8 + 48;

    private const string Services4 = "services";
    private const string Services6 = "services6";
    private const string ListMap = "svclist";
    private const string RingMap = "ring";
    private const string BackendsMap = "backends";
    private const string FlowsMap = "flows";
    private const string BackendCounters = "bcount";
    private const string ServiceCounters = "scount";
    private const int MaxCanaries = 4;
    private const uint CanarySource = 0xC000020A; // 192.0.2.10
    private static readonly UInt128 CanarySource6 = UInt128.Parse("20010db8000000000000000000000010", System.Globalization.NumberStyles.HexNumber);

    public string Name => "LoadBalancer";

    public string Description => "Spread flows to IPv4/IPv6 services (prefix, protocol, port) over weighted next hops: Maglev tables, an LRU flow table, drain, counters.";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(LoadBalancerPlugin).Assembly, "load_balancer.c.sbn");

    private static readonly Field[] PrefixValue = [new("first", FieldType.U32), new("count", FieldType.U32)];

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        // Longest service prefix -> its list of services in svclist (its own, then those of covering prefixes).
        new MapSchema(Services4, MapKind.LpmTrie, [new("prefixlen", FieldType.U32), new("addr", FieldType.Ipv4)], PrefixValue, MaxServices)
            { DoubleBuffered = true },
        new MapSchema(Services6, MapKind.LpmTrie, [new("prefixlen", FieldType.U32), new("addr", FieldType.Ipv6)], PrefixValue, MaxServices)
            { DoubleBuffered = true },
        new MapSchema(ListMap, MapKind.Array, [new("index", FieldType.U32)],
        [
            new("base", FieldType.U32), new("size", FieldType.U32), new("id", FieldType.U32), new("slot", FieldType.U32),
            new("port", FieldType.U16), new("proto", FieldType.U8), new("flags", FieldType.U8),
        ], MaxServices * ListMax) { DoubleBuffered = true },
        // The services' Maglev tables one after another (a service's from its base): entry -> backend id, 0 none.
        new MapSchema(RingMap, MapKind.Array, [new("index", FieldType.U32)], [new("backend", FieldType.U32)], 4096)
            { DoubleBuffered = true },
        // Backend id -> path, owning service, counter slot and state (up, drained, down).
        new MapSchema(BackendsMap, MapKind.Hash, [new("id", FieldType.U32)],
        [
            new("via6", FieldType.Ipv6), new("ifindex", FieldType.U32), new("via4", FieldType.Ipv4), new("service", FieldType.U32),
            new("slot", FieldType.U32), new("state", FieldType.U32),
        ], MaxNextHops) { DoubleBuffered = true },
        // Written by the datapath: the flow (family, addresses, protocol, ports) -> the backend id it was given.
        new MapSchema(FlowsMap, MapKind.LruHash,
            [new("src", FieldType.Ipv6), new("dst", FieldType.Ipv6), new("sport", FieldType.U16), new("dport", FieldType.U16), new("proto", FieldType.U8), new("family", FieldType.U8)],
            [new("backend", FieldType.U32)], DefaultFlowTableSize, MapContents.State),
        new MapSchema(BackendCounters, MapKind.Array, [new("index", FieldType.U32)],
            [new("packets", FieldType.U64), new("bytes", FieldType.U64), new("flows", FieldType.U64), new("tag", FieldType.U32)], 16, MapContents.State),
        // Per service: packets passed to the kernel because no backend could take them.
        new MapSchema(ServiceCounters, MapKind.Array, [new("index", FieldType.U32)],
            [new("packets", FieldType.U64), new("bytes", FieldType.U64), new("tag", FieldType.U32)], MaxServices, MapContents.State),
    ];

    private static readonly CommandArgument NameArgument = new("name", "the backend's name");

    public IReadOnlyList<RuntimeCommand> Commands { get; } =
    [
        new("backend", "add", "Add a backend to a service by name (or replace the backend of that name)", "backends", "name", RuntimeAction.Add,
        [
            NameArgument,
            new("service", "the name of the service it serves"),
            new("interface", "output interface"),
            new("via", "next hop of the service's family (default: the packet's destination)", Required: false),
            new("weight", "0 (drained) to 1000 (default 1)", Required: false),
            new("probe", "health probe: icmp, tcp/PORT or none (default: the service's)", Required: false),
        ]),
        new("backend", "del", "Remove a backend added by name (its flows move to the others)", "backends", "name", RuntimeAction.Remove, [NameArgument]),
        new("backend", "list", "Show the backends added by name", "backends", "name", RuntimeAction.List, []),
        new("backend", "weight", "Set a backend's weight (established flows stay; new ones follow the new table)", "weights", "name", RuntimeAction.Add,
            [NameArgument, new("weight", "0 (drained) to 1000")]),
        new("backend", "drain", "Drain a backend: no new flows, its established flows stay", "drain", "name", RuntimeAction.Add, [NameArgument]),
        new("backend", "undrain", "Take a backend out of the drain list", "drain", "name", RuntimeAction.Remove, [NameArgument]),
        // What a health check (or an operator) says of a backend: down moves its flows to the others.
        new("backend", "down", "Mark a backend down: no new flows, and its established flows move to the others", "down", "name", RuntimeAction.Add, [NameArgument]),
        new("backend", "up", "Take a backend out of the down list", "down", "name", RuntimeAction.Remove, [NameArgument]),
        new("service", "add", "Add a service (or replace the service of that name); give it backends with 'backend add'", "services", "name", RuntimeAction.Add,
        [
            new("name", "the service's name"),
            new("to", "destination prefix, IPv4 or IPv6"),
            new("protocol", "tcp, udp, sctp or a number (default: any)", Required: false),
            new("port", "destination port, with tcp, udp or sctp (default: any)", Required: false),
            new("hash", "flow (default) or source", Required: false),
            new("tableSize", "Maglev table size, a prime (default 4093)", Required: false),
            new("probe", "its backends' health probe: icmp or tcp/PORT (default: none)", Required: false),
        ]),
        new("service", "del", "Remove a service by name", "services", "name", RuntimeAction.Remove, [new("name", "the service's name")]),
        new("service", "list", "Show the services in effect", "services", "name", RuntimeAction.List, []),
    ];

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        var parsed = SettingsParser.Parse(settings, context);
        return Setup(parsed.Services, parsed.FlowTableSize, context);
    }

    private static StageSetup Setup(List<Service> services, int flowTableSize, IStageContext context)
    {
        var lists = ServiceLists(services, context);
        var services4 = new EntryTable(Services4, ["prefixlen", "addr"], ["first", "count"], services.Count);
        var services6 = new EntryTable(Services6, ["prefixlen", "addr.hi", "addr.lo"], ["first", "count"], services.Count);
        var list = new EntryTable(ListMap, ["index"], ["base", "size", "id", "slot", "port", "proto", "flags"], lists.Sum(l => l.Services.Count));
        var bases = new Dictionary<Service, uint>();
        uint ringBase = 0;
        foreach (var s in services)
        {
            bases[s] = ringBase;
            ringBase += (uint)s.Table.Length;
        }
        uint first = 0;
        foreach (var (prefix, covering) in lists)
        {
            if (prefix.V6)
                services6.Add([(ulong)prefix.Length, (ulong)(prefix.Network >> 64), (ulong)prefix.Network], [first, (ulong)covering.Count]);
            else
                services4.Add([(ulong)prefix.Length, (ulong)prefix.Network], [first, (ulong)covering.Count]);
            foreach (var s in covering)
            {
                ulong flags = (s.BySource ? 1UL : 0) | (s.Protocol is null ? 0 : 2UL) | (s.Port is null ? 0 : 4UL);
                list.Add([first++], [bases[s], (ulong)s.Table.Length, s.Id, s.Slot, s.Port ?? 0, s.Protocol ?? 0, flags]);
            }
        }
        int ringEntries = (int)ringBase, backendCount = services.Sum(s => s.Backends.Count);
        var ring = new EntryTable(RingMap, ["index"], ["backend"], ringEntries);
        var backends = new EntryTable(BackendsMap, ["id"], ["via6.hi", "via6.lo", "ifindex", "via4", "service", "slot", "state"], backendCount);
        foreach (var s in services)
        {
            var ids = s.Backends.Select(b => (ulong)b.Id).ToArray(); // hashed once, not once an entry
            for (int i = 0; i < s.Table.Length; i++)
                ring.Add([bases[s] + (ulong)i], [s.Table[i] < 0 ? 0 : ids[s.Table[i]]]);
            foreach (var b in s.Backends)
                backends.Add([b.Id], s.V6
                    ? [(ulong)(b.Via >> 64), (ulong)b.Via, (ulong)b.Ifindex, 0, s.Id, b.Slot, (ulong)b.State]
                    : [0, 0, (ulong)b.Ifindex, (ulong)b.Via, s.Id, b.Slot, (ulong)b.State]);
            WarnEmpty(s, context);
        }
        var sizes = new Dictionary<string, uint>
        {
            // At least room for four default-sized tables (64 KiB a copy): services added at run time are map writes.
            [RingMap] = Capacity(ringEntries, MinRingCapacity),
            [BackendsMap] = Capacity(backendCount, 16),
            [BackendCounters] = Capacity(backendCount, 16),
            [ListMap] = Capacity(list.Count, 16),
            [FlowsMap] = (uint)flowTableSize,
        };
        long used = ringEntries * 4L + backendCount * 48L + list.Count * 24L;
        long reserved = 2 * (sizes[RingMap] * 4L + sizes[BackendsMap] * 48L + sizes[ListMap] * 24L) + sizes[BackendCounters] * 32L + MaxServices * 24L;
        long flowBytes = (long)flowTableSize * FlowEntryBytes;
        var all = services.SelectMany(s => s.Backends).ToList();
        string tables = string.Join(", ", services.GroupBy(s => s.Table.Length).OrderBy(g => g.Key).Select(g => $"{g.Count()} of {g.Key:N0}"));
        var probed = all.Where(b => b.Probe is not null).ToList();
        return new StageSetup([], new Dictionary<string, long> { ["list_max"] = ListMax })
        {
            Tables = [services4, services6, list, ring, backends],
            MapSizes = sizes,
            ItemCounters = [.. all.Select(b => new ItemCounter(b.Name, BackendCounters, b.Slot, b.Id) { Fields = ["flows"] }),
                            .. services.Select(s => new ItemCounter(s.Name, ServiceCounters, s.Slot, s.Id))],
            Canaries = Canaries(services),
            Probes = [.. probed.Select(ProbeOf)],
            Summary = $"{services.Count} service{(services.Count == 1 ? "" : "s")} ({services.Count(s => s.V6)} IPv6), " +
                      $"{all.Count} backend{(all.Count == 1 ? "" : "s")} ({all.Count(b => b.State == BackendState.Drained)} drained, " +
                      $"{all.Count(b => b.State == BackendState.Down)} down or withdrawn" +
                      $"{(probed.Count == 0 ? "" : $"; {probed.Count} probed, {probed.Count(b => b.ProbeDown)} down by probe")}); " +
                      $"Maglev tables: {(tables.Length == 0 ? "none" : tables)} entries; flow table: {flowTableSize:N0} flows ({flowBytes / 1048576.0:F1} MiB); " +
                      $"{used / 1024.0:F1} KiB of tables, {reserved / 1024.0:F1} KiB reserved (two copies)",
        };
    }

    // The host probes the next hop out of the backend's interface, and names the probe as the backend.
    private static Probe ProbeOf(Backend b)
    {
        var p = b.Probe!;
        var target = b.Service.V6 ? Ipv6Text.ToAddress(b.Via) : Ipv4Text.ToAddress((uint)b.Via);
        return new Probe(b.ProbeName, b.Interface, target, p.Kind)
        {
            Port = p.Port, Interval = p.Interval, Timeout = p.Timeout, FailuresToDown = p.Failures, SuccessesToUp = p.Successes,
        };
    }

    /// <summary>
    /// Per distinct prefix, the services a packet whose longest service prefix it is may take, in the order the datapath
    /// tries them: longer prefix first (its own, then those of covering prefixes), then the more specific (protocol and
    /// port, port, protocol, neither), then settings order.
    /// </summary>
    private static List<(Service Prefix, List<Service> Services)> ServiceLists(List<Service> services, IStageContext context)
    {
        var lists = new List<(Service, List<Service>)>();
        foreach (var prefix in services.DistinctBy(s => (s.V6, s.Network, s.Length)))
        {
            var covering = services.Where(s => s.V6 == prefix.V6 && s.Length <= prefix.Length && s.Covers(prefix.Network))
                .OrderByDescending(s => s.Length).ThenBy(s => s.Specificity).ToList();
            if (covering.Count > ListMax)
            {
                context.Error(prefix.Node["to"], $"{covering.Count} services cover {prefix.Prefix} (its own and those of shorter prefixes): at most {ListMax}");
                covering = covering[..ListMax];
            }
            lists.Add((prefix, covering));
        }
        return lists;
    }

    // A power of two at least n (and at least minimum): a capacity changes in steps, each a new generation.
    private static uint Capacity(int n, int minimum) => (uint)Math.Max(minimum, (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, n)));

    // A backend with a weight but no entry in its table gets no flows: its share is below one entry.
    private static void WarnEmpty(Service s, IStageContext context)
    {
        var counts = new int[s.Backends.Count];
        foreach (int b in s.Table)
            if (b >= 0)
                counts[b]++;
        for (int i = 0; i < s.Backends.Count; i++)
            if (s.Backends[i].State == BackendState.Up && counts[i] == 0)
                context.Warn(s.Backends[i].Node, $"backend '{s.Backends[i].Name}' of service {s.Name} gets no entry of its {s.Table.Length:N0}-entry table " +
                                                 $"(weight {s.Backends[i].Weight} is too small a share: raise it or the table size)");
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
    /// Which backend a new flow takes: the datapath's computation in C# (the first service of the longest prefix's list
    /// that takes the packet, then the table entry its hash picks). Null when no service takes it; a null backend when
    /// none is left.
    /// </summary>
    private static (Service Service, Backend? Backend)? Route(List<Service> services, bool v6, UInt128 source, UInt128 destination, byte protocol, ushort sport, ushort dport)
    {
        var service = services.Where(s => s.Takes(v6, destination, protocol, hasPorts: true, dport))
            .OrderByDescending(s => s.Length).ThenBy(s => s.Specificity).FirstOrDefault();
        if (service is null || service.Table.Length == 0)
            return service is null ? null : (service, null);
        uint hash = Hash(v6, service.BySource, source, destination, protocol, sport, dport);
        int backend = service.Table[(int)(hash % (uint)service.Table.Length)];
        return (service, backend < 0 ? null : service.Backends[backend]);
    }

    // UDP flows from a documentation source; the host runs them with empty State maps (no flow table), so they take the table's pick.
    private static List<CanaryPacket> Canaries(List<Service> services)
    {
        var canaries = new List<CanaryPacket>();
        foreach (var service in services.Where(s => s.Protocol is null or 17).Take(MaxCanaries))
            for (ushort sport = 40000; sport < 40002; sport++)
            {
                int bits = service.V6 ? 128 : 32;
                var destination = service.Length == bits ? service.Network : service.Network | 1;
                var source = service.V6 ? CanarySource6 : CanarySource;
                ushort dport = service.Port ?? 9;
                if (Route(services, service.V6, source, destination, 17, sport, dport) is not var (_, backend))
                    continue;
                var frame = service.V6
                    ? CanaryFrames.Ipv6Udp(Ipv6Text.ToAddress(source), Ipv6Text.ToAddress(destination), sport, dport)
                    : CanaryFrames.Ipv4Udp(Ipv4Text.ToAddress((uint)source), Ipv4Text.ToAddress((uint)destination), sport, dport);
                // No backend left (all drained, down or withdrawn): the service's packets go to the kernel.
                canaries.Add(new CanaryPacket($"service {service.Name}, flow from port {sport}", frame,
                    backend is null ? CanaryVerdict.Pass : CanaryVerdict.Redirect, backend?.Ifindex ?? 0));
            }
        return canaries;
    }

    /// <summary>Flows stay as they are in a table of another size (the least recently used go when it is smaller); counters
    /// follow their positions, and positions past the end go.</summary>
    public MapEntry? Migrate(MapSchema from, MapSchema to, MapEntry entry) =>
        to.Kind != MapKind.Array || Convert.ToUInt32(entry.Key["index"]) < to.MaxEntries ? entry : null;
}
