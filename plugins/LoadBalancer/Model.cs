using PluginHost.Contract;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.LoadBalancer;

/// <summary>What a backend does with flows; the numbers are the datapath's (backends map, <c>state</c>).</summary>
internal enum BackendState
{
    /// <summary>Takes new flows (its share of the Maglev table) and keeps its own.</summary>
    Up = 0,
    /// <summary>Weight 0 or drained by name: no table entries, so no new flows; its recorded flows stay on it.</summary>
    Drained = 1,
    /// <summary>Down (listed in <c>down</c>, or its health probe says down) or withdrawn (its interface is missing or
    /// down): no table entries, and its recorded flows pick again, so they move to the others.</summary>
    Down = 2,
}

/// <summary>One backend: an interface and next hop (IPv4 in the low 32 bits; 0: the packet's destination) of its service's family.</summary>
/// <param name="Ifindex">0 when withdrawn (its interface is missing or down).</param>
/// <param name="Explicit">Named in settings (a default name is the path's, see <see cref="DefaultName"/>).</param>
internal sealed class Backend(string? name, string iface, int ifindex, UInt128 via, int weight, SettingsNode node)
{
    public string Name { get; set; } = name ?? "";
    public bool Explicit { get; } = name is not null;
    public string Interface { get; } = iface;
    public int Ifindex { get; } = ifindex;
    public UInt128 Via { get; } = via;
    public int Weight { get; set; } = weight;
    public bool Drained { get; set; }
    public bool Down { get; set; }
    public SettingsNode Node { get; } = node;

    /// <summary>Whether its settings give a <c>probe</c> (<see cref="Probe"/> null then: <c>none</c>); otherwise its service's applies.</summary>
    public bool ProbeGiven { get; set; }

    /// <summary>Its health probe, once settled (its own, else its service's); null: not probed.</summary>
    public BackendProbe? Probe { get; set; }

    /// <summary>What the host knows its probe by: the name, '@' (not allowed in probe names) as '/'.</summary>
    public string ProbeName => Name.Replace('@', '/');

    /// <summary>Its probe is down (the host's state when Configure ran).</summary>
    public bool ProbeDown { get; set; }

    /// <summary>Which service it serves (set when it joins one).</summary>
    public Service Service { get; set; } = null!;

    /// <summary>Where its counters are (its position among the stage's backends).</summary>
    public uint Slot { get; set; }

    public BackendState State => Down || ProbeDown || Ifindex == 0 ? BackendState.Down : Drained || Weight == 0 ? BackendState.Drained : BackendState.Up;

    /// <summary>The path as a name: "up1@198.18.2.2", or "up1" without a next hop.</summary>
    public string Path(bool v6) => Via == 0 ? Interface : $"{Interface}@{(v6 ? Ipv6Text.ToAddress(Via) : Ipv4Text.ToAddress((uint)Via))}";

    /// <summary>What seeds the backend's preferences in its Maglev table: the path, so a renamed backend keeps its entries.</summary>
    public string MaglevKey(bool v6) => $"{Interface} {(v6 ? Ipv6Text.ToAddress(Via) : Ipv4Text.ToAddress((uint)Via))}";

    public string DefaultName => Path(Service.V6);

    /// <summary>
    /// The identity a flow entry records: the service, the name and the path, hashed (never 0: ring entry 0 is "no backend").
    /// Weight and drain are not part of it, so flows stay through them; a backend removed, or redefined under its name
    /// (another interface or next hop), is another identity, and its flows pick again.
    /// </summary>
    public uint Id => Identity.Of($"{Service.Name}\n{Name}\n{MaglevKey(Service.V6)}");
}

/// <summary>One service: a destination prefix (IPv4 in the low 32 bits), optionally a protocol and destination port.</summary>
internal sealed class Service(string? name, bool v6, UInt128 network, int length, byte? protocol, ushort? port, bool bySource, int? tableSize,
    SettingsNode node)
{
    public string Name { get; set; } = name ?? "";
    public bool Explicit { get; } = name is not null;
    public bool V6 { get; } = v6;
    public UInt128 Network { get; } = network;
    public int Length { get; } = length;
    public byte? Protocol { get; } = protocol;
    public ushort? Port { get; } = port;
    public bool BySource { get; } = bySource;
    public int? TableSize { get; } = tableSize;
    public SettingsNode Node { get; } = node;
    public List<Backend> Backends { get; } = [];

    /// <summary>The probe its backends take unless they give their own; null: none.</summary>
    public BackendProbe? Probe { get; set; }

    /// <summary>The Maglev table: entry → index into <see cref="Backends"/>, -1 none.</summary>
    public int[] Table { get; set; } = [];

    /// <summary>Its position among the stage's services: where its no-backend counter is.</summary>
    public uint Slot { get; set; }

    public string Prefix => V6 ? $"{Ipv6Text.ToAddress(Network)}/{Length}" : $"{Ipv4Text.ToAddress((uint)Network)}/{Length}";

    /// <summary>Prefix, then protocol and port where given: "198.18.9.0/24 tcp/443".</summary>
    public string Text => Prefix + (Protocol, Port) switch
    {
        (null, null) => "",
        ({ } p, null) => $" {ProtocolName(p)}",
        (null, { } d) => $" port {d}",
        ({ } p, { } d) => $" {ProtocolName(p)}/{d}",
    };

    /// <summary>Within one prefix, the more specific first: protocol and port, port, protocol, neither.</summary>
    public int Specificity => (Protocol, Port) switch { (not null, not null) => 0, (null, not null) => 1, (not null, null) => 2, _ => 3 };

    public uint Id => Identity.Of("service\n" + Name);

    public static string ProtocolName(byte p) => p switch { 6 => "tcp", 17 => "udp", 132 => "sctp", 1 => "icmp", 58 => "icmpv6", _ => p.ToString(System.Globalization.CultureInfo.InvariantCulture) };

    /// <summary>Whether the service takes a packet to this destination, as the datapath decides it.</summary>
    public bool Takes(bool v6, UInt128 destination, byte protocol, bool hasPorts, ushort dport) =>
        v6 == V6 && Covers(destination) && (Protocol is null || Protocol == protocol) && (Port is null || (hasPorts && Port == dport));

    public bool Covers(UInt128 address) =>
        V6 ? Ipv6Text.Mask(address, Length) == Network : Ipv4Text.Mask((uint)address, Length) == (uint)Network;
}

internal static class Identity
{
    /// <summary>FNV-1a of the text; never 0.</summary>
    public static uint Of(string text)
    {
        uint hash = 2166136261;
        foreach (char c in text)
            hash = (hash ^ c) * 16777619;
        return hash == 0 ? 1 : hash;
    }
}
