namespace PluginHost.Contract;

/// <summary>
/// A routing strategy: one stage of a pipeline. A plugin only returns data (a template,
/// map schemas, map entries); the host renders, compiles, loads and attaches.
/// Implementations must have a public parameterless constructor.
/// </summary>
public interface IRoutingPlugin
{
    /// <summary>The name that configuration uses to pick this plugin (e.g. <c>SourcePolicy</c>).</summary>
    string Name { get; }

    /// <summary>One line for <c>pluginhost plugins list</c>.</summary>
    string Description { get; }

    /// <summary>
    /// The Scriban template of the stage's C fragment. It must define
    /// <c>static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta)</c>
    /// returning one of the verdict helpers of <c>bpf-templates/prelude.h.sbn</c>: <c>ph_next()</c> (the next stage),
    /// <c>ph_pass()</c> (to the kernel), <c>ph_drop()</c>, <c>ph_redirect_ipv4(skb, meta, ifindex, nexthop)</c> or
    /// <c>ph_redirect_ipv6(skb, meta, ifindex, nexthop)</c> (out of <c>ifindex</c>; an ifindex of 0, a withdrawn route,
    /// passes the packet to the kernel). See docs/PLUGINS.md, "Verdicts".
    /// </summary>
    StageTemplate Template { get; }

    /// <summary>The BPF maps the stage needs. The host generates their C structs and codecs.</summary>
    IReadOnlyList<MapSchema> Maps { get; }

    /// <summary>
    /// Validate this stage's settings and turn them into map entries and template constants.
    /// Report every problem through <see cref="IStageContext.Error"/>; the host applies nothing
    /// when any stage reported an error.
    /// </summary>
    StageSetup Configure(SettingsNode settings, IStageContext context);
}

/// <summary>Which hook the pipeline runs on.</summary>
public enum Direction
{
    /// <summary>Packets arriving on the interface (a router's forwarding path).</summary>
    Ingress,
    /// <summary>Packets leaving through the interface (locally originated or forwarded).</summary>
    Egress,
}

/// <summary>What the host offers a plugin while it validates its settings.</summary>
public interface IStageContext
{
    /// <summary>The pipeline this stage belongs to.</summary>
    string PipelineName { get; }

    /// <summary>The hook the pipeline is attached to.</summary>
    Direction Direction { get; }

    /// <summary>
    /// Resolve an interface name in the pipeline's network namespace. Returns false, with the
    /// reason in <paramref name="error"/>, when it does not exist or is down.
    /// </summary>
    bool TryResolveInterface(string name, out int ifindex, out string error);

    /// <summary>
    /// Resolve the interface that a route (or a rule, or a next hop) sends packets out of, in the pipeline's network
    /// namespace, and check its next hop. (Contract 2.1.)
    /// <list type="bullet">
    /// <item>Up: its ifindex.</item>
    /// <item>Missing or down (or without carrier): ifindex 0.
    /// The route is <em>withdrawn</em>, not refused: write it with ifindex 0, which the redirect helpers pass to the kernel
    /// (counted as <c>targetDown</c>), and give it no redirect canary (a <c>Pass</c> one, if any). The host reports the
    /// withdrawal at <paramref name="node"/> (a warning for <c>validate</c>, a log line and <c>status</c> for a running
    /// host), watches the interface, and applies again when it changes: a recreated interface (any ifindex) is rewritten
    /// with no operator action.</item>
    /// <item><see cref="OutputInterface.InterfaceError"/>: the name can never be an interface; refuse the route.</item>
    /// <item><see cref="OutputInterface.NextHopError"/>: <paramref name="via"/> is not on-link for the interface (in none
    /// of its subnets, and no route of the namespace without a gateway goes out of it to that address; an interface with no
    /// address or such route of the family, or an IPv6 link-local next hop, is not judged); refuse the route.</item>
    /// </list>
    /// <paramref name="routes"/> is how many routes the call stands for (a routes file resolves each name once).
    /// The default implementation (for contexts written against 2.0) refuses what <see cref="TryResolveInterface"/> refuses.
    /// </summary>
    OutputInterface ResolveOutput(SettingsNode node, string name, System.Net.IPAddress? via = null, int routes = 1) =>
        TryResolveInterface(name, out int ifindex, out string error) ? new OutputInterface(ifindex) : new OutputInterface(0, InterfaceError: error);

    /// <summary>
    /// An absolute path for a path given in settings: relative paths are relative to the configuration file, symbolic links
    /// resolved. A path outside the directories the host allows (the configuration's, and its <c>allowedPaths:</c>) throws
    /// <see cref="UnauthorizedAccessException"/> whose message names the confinement: report it at the setting. Open what it
    /// returns as a regular file of bounded size, without blocking (a FIFO would stall the host's writer).
    /// </summary>
    string ResolvePath(string path);

    /// <summary>Report a problem with one settings value; the host adds the file and line.</summary>
    void Error(SettingsNode node, string message);

    /// <summary>
    /// Report something valid but probably unintended (a rule no packet can reach), located like an error; nothing is
    /// refused. <c>validate</c> and <c>run</c> print it. (Contract 2.2; contexts written against 2.1 drop it.)
    /// </summary>
    void Warn(SettingsNode node, string message)
    {
    }

    /// <summary>
    /// The state of this stage's probe <paramref name="name"/> (one of <see cref="StageSetup.Probes"/> of an earlier apply)
    /// now: <see cref="Contract.ProbeState.Unknown"/> for a probe not declared before, not decided yet, or on a host that runs
    /// none (<c>validate</c>, or a host older than contract 2.3). Treat Unknown as up. (Contract 2.3.)
    /// </summary>
    ProbeState ProbeState(string name) => default;
}

/// <summary>What <see cref="IStageContext.ResolveOutput"/> found (contract 2.1).</summary>
/// <param name="Ifindex">The interface's index; 0 when the route is withdrawn (the interface is missing or down) or refused.</param>
/// <param name="InterfaceError">Why the name can never be used ("invalid interface name 'a/b'"); the route is refused.</param>
/// <param name="NextHopError">Why the next hop cannot be reached out of the interface ("next hop 198.18.3.9 is not on-link
/// for up1 (its subnets: 198.18.2.0/24)"); the route is refused.</param>
public readonly record struct OutputInterface(int Ifindex, string? InterfaceError = null, string? NextHopError = null)
{
    /// <summary>Neither error: the route is usable (written with <see cref="Ifindex"/>, 0 when withdrawn).</summary>
    public bool Ok => InterfaceError is null && NextHopError is null;

    /// <summary>Usable but withdrawn: its packets go to the kernel until the interface is back.</summary>
    public bool Withdrawn => Ok && Ifindex == 0;
}

/// <summary>What a stage's validated settings become: map entries and template constants.</summary>
/// <param name="Entries">Entries to write into the stage's maps.</param>
/// <param name="Constants">Typed numbers exposed to the template as <c>constants.NAME</c>.</param>
public sealed record StageSetup(IReadOnlyList<MapEntry> Entries, IReadOnlyDictionary<string, long> Constants)
{
    /// <summary>
    /// Packets the host runs through a new generation (BPF_PROG_TEST_RUN) before it goes live; a
    /// verdict other than the expected one refuses the reload. Keep it to a handful.
    /// </summary>
    public IReadOnlyList<CanaryPacket> Canaries { get; init; } = [];

    /// <summary>Entries in compact form, for large tables; written together with <see cref="Entries"/>.</summary>
    public IReadOnlyList<EntryTable> Tables { get; init; } = [];

    /// <summary>
    /// This stage's capacity of some of its maps, by name, where it differs from the schema's <see cref="MapSchema.MaxEntries"/>
    /// (contract 2.2): size large tables to what they hold, so a stage with ten rules does not reserve room for a million.
    /// A changed capacity means new maps, so a new generation (compiled, then swapped in atomically): grow in steps
    /// (powers of two, say), not by the entry.
    /// </summary>
    public IReadOnlyDictionary<string, uint> MapSizes { get; init; } = new Dictionary<string, uint>();

    /// <summary>
    /// Counters of named items (rules, backends) the datapath keeps in one of the stage's <see cref="MapContents.State"/>
    /// array maps, for the host to show by name: <c>pluginhost rule list --stats</c> and <c>/metrics</c>. (Contract 2.2.)
    /// </summary>
    public IReadOnlyList<ItemCounter> ItemCounters { get; init; } = [];

    /// <summary>One line on what the stage holds, for <c>validate</c> and <c>status</c> ("9,794 rules; tree of 12,001 nodes,
    /// depth 21; 3.1 MiB"); cut at 400 characters. (Contract 2.2.)</summary>
    public string? Summary { get; init; }

    /// <summary>
    /// Health probes the host runs for this stage (contract 2.3): ICMP echo or TCP connect, out of an interface to a next
    /// hop, in the pipeline's network namespace. A state change applies the configuration again; <c>Configure</c> reads
    /// each probe's state with <see cref="IStageContext.ProbeState"/> (and takes a down target out of what it writes).
    /// </summary>
    public IReadOnlyList<Probe> Probes { get; init; } = [];

    /// <summary>A setup with no entries and no constants.</summary>
    public static StageSetup Empty { get; } = new([], new Dictionary<string, long>());
}

/// <summary>
/// Where the datapath counts one named item (contract 2.2): element <paramref name="Index"/> of the State array map
/// <paramref name="Map"/>, whose value has U64 fields <c>packets</c> and <c>bytes</c>. With a <paramref name="Tag"/>
/// other than 0, the value's U32 field <c>tag</c> must equal it, else the element counts another item and the host
/// shows 0 (a position that changed owner).
/// </summary>
/// <param name="Item">The item's key as its runtime command lists it (a rule's name).</param>
/// <param name="Map">The State array map, by its name in the plugin's schema.</param>
/// <param name="Index">The element that counts the item.</param>
/// <param name="Tag">The owner the element's <c>tag</c> must name; 0: no check.</param>
public sealed record ItemCounter(string Item, string Map, uint Index, uint Tag = 0)
{
    /// <summary>
    /// Further U64 fields of the element the host shows beside packets and bytes, by field name (a backend's <c>flows</c>:
    /// new flows it took); in <c>list --stats</c> and on <c>/metrics</c> as <c>counter="NAME"</c> (contract 2.5).
    /// </summary>
    public IReadOnlyList<string> Fields { get; init; } = [];
}
