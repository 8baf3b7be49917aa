namespace PluginHost.Plugins.FiveTuplePolicy.Classifier;

/// <summary>The address family of a rule or a packet: each has its own tree.</summary>
internal enum IpFamily : byte
{
    IPv4 = 4,
    IPv6 = 6,
}

/// <summary>
/// What one rule matches. Addresses are numbers with the first byte most significant; an IPv4 address sits in the
/// low 32 bits. Ranges are inclusive. A rule whose port ranges are not both full <see cref="RequiresPorts"/>: a
/// packet without ports (not TCP/UDP/SCTP, a non-first fragment, no L4 header) never matches it.
/// </summary>
internal readonly record struct RuleMatch
{
    public RuleMatch(IpFamily family, byte protocolLow, byte protocolHigh, UInt128 source, int sourceLength,
        UInt128 destination, int destinationLength, ushort sourcePortLow, ushort sourcePortHigh,
        ushort destinationPortLow, ushort destinationPortHigh)
    {
        if (family is not (IpFamily.IPv4 or IpFamily.IPv6))
            throw new ArgumentOutOfRangeException(nameof(family), family, "create rule: unknown address family");
        if (protocolLow > protocolHigh)
            throw new ArgumentException($"create rule: protocol range {protocolLow}-{protocolHigh} is empty");
        CheckPrefix(family, source, sourceLength, "source");
        CheckPrefix(family, destination, destinationLength, "destination");
        if (sourcePortLow > sourcePortHigh)
            throw new ArgumentException($"create rule: source port range {sourcePortLow}-{sourcePortHigh} is empty");
        if (destinationPortLow > destinationPortHigh)
            throw new ArgumentException($"create rule: destination port range {destinationPortLow}-{destinationPortHigh} is empty");
        Family = family;
        ProtocolLow = protocolLow;
        ProtocolHigh = protocolHigh;
        Source = source;
        SourceLength = sourceLength;
        Destination = destination;
        DestinationLength = destinationLength;
        SourcePortLow = sourcePortLow;
        SourcePortHigh = sourcePortHigh;
        DestinationPortLow = destinationPortLow;
        DestinationPortHigh = destinationPortHigh;
        // Derived once here: Matches runs millions of times in the reference matcher.
        SourceMask = Mask(family, sourceLength);
        DestinationMask = Mask(family, destinationLength);
        RequiresPorts = sourcePortLow != 0 || sourcePortHigh != ushort.MaxValue
                        || destinationPortLow != 0 || destinationPortHigh != ushort.MaxValue;
    }

    public IpFamily Family { get; }
    public byte ProtocolLow { get; }
    public byte ProtocolHigh { get; }
    public UInt128 Source { get; }
    public int SourceLength { get; }
    public UInt128 Destination { get; }
    public int DestinationLength { get; }
    public ushort SourcePortLow { get; }
    public ushort SourcePortHigh { get; }
    public ushort DestinationPortLow { get; }
    public ushort DestinationPortHigh { get; }

    /// <summary>A rule that matches every packet of <paramref name="family"/>, ports or not.</summary>
    public static RuleMatch Any(IpFamily family) => new(family, 0, 255, 0, 0, 0, 0, 0, ushort.MaxValue, 0, ushort.MaxValue);

    /// <summary>Either port range is not full: a packet without ports never matches the rule.</summary>
    public bool RequiresPorts { get; }

    public UInt128 SourceMask { get; }

    public UInt128 DestinationMask { get; }

    /// <summary>The last address of the source prefix (the first is <see cref="Source"/>).</summary>
    public UInt128 SourceLast => Source | (~SourceMask & AllOnes(Family));

    public UInt128 DestinationLast => Destination | (~DestinationMask & AllOnes(Family));

    /// <summary>The rule's meaning, written plainly: the reference the tree is tested against.</summary>
    public bool Matches(in PacketKey key) =>
        key.Family == Family
        && key.Protocol >= ProtocolLow && key.Protocol <= ProtocolHigh
        && (key.Source & SourceMask) == Source
        && (key.Destination & DestinationMask) == Destination
        && (!RequiresPorts || (key.HasPorts
                               && key.SourcePort >= SourcePortLow && key.SourcePort <= SourcePortHigh
                               && key.DestinationPort >= DestinationPortLow && key.DestinationPort <= DestinationPortHigh));

    /// <summary>Address bits of a family: 32 or 128.</summary>
    public static int Width(IpFamily family) => family == IpFamily.IPv4 ? 32 : 128;

    /// <summary>Every address bit of the family set: the largest address.</summary>
    public static UInt128 AllOnes(IpFamily family) => family == IpFamily.IPv4 ? uint.MaxValue : UInt128.MaxValue;

    /// <summary>The mask of a prefix length, within the family's width.</summary>
    public static UInt128 Mask(IpFamily family, int length) =>
        // Not "~(x >> length)" at the full width: a UInt128 shift count is taken modulo 128, so ">> 128" shifts nothing.
        length == 0 ? UInt128.Zero : length >= Width(family) ? AllOnes(family) : AllOnes(family) & ~(AllOnes(family) >> length);

    public override string ToString()
    {
        string proto = ProtocolLow == 0 && ProtocolHigh == 255 ? "any"
            : ProtocolLow == ProtocolHigh ? ProtocolLow.ToString() : $"{ProtocolLow}-{ProtocolHigh}";
        return $"{proto} {AddressText.Format(Family, Source)}/{SourceLength} {AddressText.Format(Family, Destination)}/{DestinationLength} " +
               $"{SourcePortLow}-{SourcePortHigh} {DestinationPortLow}-{DestinationPortHigh}";
    }

    private static void CheckPrefix(IpFamily family, UInt128 value, int length, string which)
    {
        int width = Width(family);
        if (length < 0 || length > width)
            throw new ArgumentOutOfRangeException(which + "Length", length, $"create rule: {which} prefix length {length} is outside 0-{width}");
        if ((value & ~Mask(family, length)) != 0)
            throw new ArgumentException($"create rule: {which} prefix {AddressText.Format(family, value)}/{length} has host bits set " +
                                        "(or bits beyond the family's width)");
    }
}

/// <summary>
/// One packet's header fields as the classifier sees them: addresses as numbers (IPv4 in the low 32 bits), and
/// ports only when the packet has them (TCP, UDP or SCTP, and not a non-first fragment); otherwise both are 0.
/// </summary>
internal readonly record struct PacketKey
{
    public PacketKey(IpFamily family, byte protocol, UInt128 source, UInt128 destination, bool hasPorts,
        ushort sourcePort = 0, ushort destinationPort = 0)
    {
        if (family is not (IpFamily.IPv4 or IpFamily.IPv6))
            throw new ArgumentOutOfRangeException(nameof(family), family, "create packet key: unknown address family");
        if (source > RuleMatch.AllOnes(family) || destination > RuleMatch.AllOnes(family))
            throw new ArgumentOutOfRangeException(nameof(source), "create packet key: an IPv4 address must fit in 32 bits");
        Family = family;
        Protocol = protocol;
        Source = source;
        Destination = destination;
        HasPorts = hasPorts;
        // Zero, not the header's bytes: the tree routes a portless packet by these values, as the BPF program will.
        SourcePort = hasPorts ? sourcePort : (ushort)0;
        DestinationPort = hasPorts ? destinationPort : (ushort)0;
    }

    public IpFamily Family { get; }
    public byte Protocol { get; }
    public UInt128 Source { get; }
    public UInt128 Destination { get; }
    public bool HasPorts { get; }
    public ushort SourcePort { get; }
    public ushort DestinationPort { get; }

    public override string ToString() =>
        $"{AddressText.Format(Family, Source)} {AddressText.Format(Family, Destination)} " +
        (HasPorts ? $"{SourcePort} {DestinationPort}" : "- -") + $" {Protocol}";
}
