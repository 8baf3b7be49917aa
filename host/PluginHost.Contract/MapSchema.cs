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

/// <summary>A BPF map a stage needs. The host names it per stage, generates its C structs and codec.</summary>
/// <param name="Name">Name used in the template (<c>maps.NAME</c>) and in map entries; a C identifier.</param>
/// <param name="Kind">Map type.</param>
/// <param name="Key">Key fields, in order.</param>
/// <param name="Value">Value fields, in order.</param>
/// <param name="MaxEntries">Capacity.</param>
public sealed record MapSchema(string Name, MapKind Kind, IReadOnlyList<Field> Key, IReadOnlyList<Field> Value, uint MaxEntries);

/// <summary>
/// One entry to write into a stage map. Values: integers (any integral type) for U*/Be* fields,
/// <see cref="System.Net.IPAddress"/> for Ipv4/Ipv6, <see cref="System.Net.NetworkInformation.PhysicalAddress"/> for Mac.
/// Fields left out are zero.
/// </summary>
public sealed record MapEntry(string Map, IReadOnlyDictionary<string, object> Key, IReadOnlyDictionary<string, object> Value);
