namespace PluginHost.Contract;

/// <summary>Kinds of BPF map a plugin may ask for.</summary>
public enum MapKind
{
    /// <summary>BPF_MAP_TYPE_HASH: exact match.</summary>
    Hash,
    /// <summary>BPF_MAP_TYPE_LPM_TRIE: longest-prefix match; the key's first field must be a U32 named <c>prefixlen</c>.</summary>
    LpmTrie,
    /// <summary>BPF_MAP_TYPE_ARRAY: index by a U32 key.</summary>
    Array,
    /// <summary>BPF_MAP_TYPE_PERCPU_ARRAY.</summary>
    PerCpuArray,
    /// <summary>BPF_MAP_TYPE_LRU_HASH: flow tables.</summary>
    LruHash,
}

/// <summary>C types of map fields. Multi-byte <c>Be*</c>, address types are stored in network byte order.</summary>
public enum FieldType
{
    /// <summary>__u8</summary>
    U8,
    /// <summary>__u16, host byte order</summary>
    U16,
    /// <summary>__u32, host byte order</summary>
    U32,
    /// <summary>__u64, host byte order</summary>
    U64,
    /// <summary>__be16, network byte order (ports)</summary>
    Be16,
    /// <summary>__be32, network byte order</summary>
    Be32,
    /// <summary>An IPv4 address, __be32</summary>
    Ipv4,
    /// <summary>An IPv6 address, __u8[16]</summary>
    Ipv6,
    /// <summary>A MAC address, __u8[6]</summary>
    Mac,
}

/// <summary>One field of a map key or value.</summary>
/// <param name="Name">A C identifier.</param>
/// <param name="Type">Its C type.</param>
public sealed record Field(string Name, FieldType Type);

/// <summary>Who writes a map's entries, which decides what a reload does with them.</summary>
public enum MapContents
{
    /// <summary>The host, from configuration (and runtime commands): reloads reconcile it by difference.</summary>
    Config,
    /// <summary>The datapath (flow tables, learned state): reloads keep it exactly as it is.</summary>
    State,
}

/// <summary>A BPF map a stage needs. The host names it per stage, generates its C structs and codec.</summary>
/// <param name="Name">Name used in the template (<c>maps.NAME</c>) and in map entries; a C identifier.</param>
/// <param name="Kind">Map type.</param>
/// <param name="Key">Key fields, in order.</param>
/// <param name="Value">Value fields, in order.</param>
/// <param name="MaxEntries">Capacity.</param>
/// <param name="Contents">Who writes the entries.</param>
/// <remarks>
/// A map is pinned and kept across reloads while its layout (this whole record) is unchanged. When
/// it changes, the plugin must implement <see cref="IMapMigration"/> or the reload is refused.
/// </remarks>
public sealed record MapSchema(string Name, MapKind Kind, IReadOnlyList<Field> Key, IReadOnlyList<Field> Value, uint MaxEntries,
    MapContents Contents = MapContents.Config)
{
    /// <summary>
    /// Changed as one with the stage's other double-buffered maps (a <see cref="MapContents.Config"/> map only; contract 2.2).
    /// The host keeps two copies of each, <c>maps.NAME.name</c> and <c>maps.NAME.name_b</c>, and a bank selector the
    /// template reads once per packet with <c>{{ stage.bank }}</c> (0: the first copies, 1: the second). A change is
    /// written into the copies no packet uses, then the selector flips: a packet sees every double-buffered map of the
    /// stage either wholly before or wholly after the change, never a mix (a decision tree, a hash table, a rule set).
    /// Before it writes a copy again, the host waits until no packet that started on it can still be running.
    /// </summary>
    public bool DoubleBuffered { get; init; }
}

/// <summary>
/// Implemented by a plugin (on the same class as <see cref="IRoutingPlugin"/>) whose map layout
/// changed between versions, to carry the old entries into the new layout on reload.
/// </summary>
public interface IMapMigration
{
    /// <summary>Convert one entry read from the old map (decoded with <paramref name="from"/>). Return null to drop it.</summary>
    MapEntry? Migrate(MapSchema from, MapSchema to, MapEntry entry);
}

/// <summary>
/// One entry to write into a stage map. Values: integers (any integral type) for U*/Be* fields,
/// <see cref="System.Net.IPAddress"/> for Ipv4/Ipv6, <see cref="System.Net.NetworkInformation.PhysicalAddress"/> for Mac.
/// Fields left out are zero.
/// </summary>
public sealed record MapEntry(string Map, IReadOnlyDictionary<string, object> Key, IReadOnlyDictionary<string, object> Value);
