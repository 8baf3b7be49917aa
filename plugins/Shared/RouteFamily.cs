using System.Net;
using PluginHost.Contract;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// What differs between IPv4 and IPv6 source routes (SourcePolicy and IPv6): text, map layout, canaries. Addresses are
/// numbers in a <see cref="UInt128"/> (an IPv4 address in the low 32 bits).
/// </summary>
internal abstract class RouteFamily
{
    public static readonly RouteFamily Ipv4 = new V4();
    public static readonly RouteFamily Ipv6 = new V6();

    /// <summary>Address bits: 32 or 128.</summary>
    public abstract int Bits { get; }

    /// <summary>The map's address field type.</summary>
    public abstract FieldType AddressType { get; }

    /// <summary>The routes map's fields as <see cref="EntryTable"/> columns, in the order <see cref="AddRow"/> writes them.</summary>
    public abstract string[] KeyColumns { get; }

    public abstract string[] ValueColumns { get; }

    /// <summary>A prefix to show in examples ("missing source prefix (e.g. ...)").</summary>
    public abstract string ExamplePrefix { get; }

    /// <summary>What is wrong with a source prefix, or null; <paramref name="inFile"/>: from a routes file.</summary>
    public abstract string? PrefixProblem(ReadOnlySpan<char> text, bool inFile, out UInt128 network, out int length);

    /// <summary>What is wrong with a next hop, or null; <paramref name="inFile"/>: from a routes file.</summary>
    public abstract string? NextHopProblem(ReadOnlySpan<char> text, bool inFile, out UInt128 via);

    public abstract void AddRow(EntryTable table, int length, UInt128 network, int ifindex, UInt128 via);

    public abstract IPAddress ToAddress(UInt128 address);

    /// <summary>The address with every bit past <paramref name="length"/> cleared.</summary>
    public UInt128 Mask(UInt128 address, int length) => length == 0 ? UInt128.Zero : address & (UInt128.MaxValue << (Bits - length));

    /// <summary>The source of a route's canary: the first address of the prefix (IPv6: never the unspecified ::).</summary>
    public abstract UInt128 CanarySource(UInt128 network);

    public abstract byte[] CanaryFrame(UInt128 source);

    private sealed class V4 : RouteFamily
    {
        private static readonly IPAddress CanaryDestination = IPAddress.Parse("192.0.2.1");

        public override int Bits => 32;
        public override FieldType AddressType => FieldType.Ipv4;
        public override string[] KeyColumns { get; } = ["prefixlen", "addr"];
        public override string[] ValueColumns { get; } = ["ifindex", "nexthop"];
        public override string ExamplePrefix => "198.18.1.0/24";

        // A routes file says only "invalid prefix 'TEXT'" and "expected a unicast IPv4 address" (the wording it always had).
        public override string? PrefixProblem(ReadOnlySpan<char> text, bool inFile, out UInt128 network, out int length)
        {
            string? expected = inFile ? null
                : text.Contains(':') ? "SourcePolicy routes IPv4 sources (use the IPv6 plugin for IPv6)"
                : "expected an IPv4 CIDR such as 198.18.1.0/24";
            string? problem = Prefixes.Ipv4Problem(text, expected, out uint address, out length);
            network = address;
            return problem;
        }

        public override string? NextHopProblem(ReadOnlySpan<char> text, bool inFile, out UInt128 via)
        {
            string? problem = inFile ? NextHops.Ipv4Problem(text, null, out uint address) : NextHops.Ipv4ProblemByRule(text, out address);
            via = address;
            return problem;
        }

        public override void AddRow(EntryTable table, int length, UInt128 network, int ifindex, UInt128 via) =>
            table.Add([(ulong)length, (ulong)network], [(ulong)ifindex, (ulong)via]);

        public override IPAddress ToAddress(UInt128 address) => Ipv4Text.ToAddress((uint)address);

        public override UInt128 CanarySource(UInt128 network) => network;

        public override byte[] CanaryFrame(UInt128 source) => CanaryFrames.Ipv4Udp(ToAddress(source), CanaryDestination);
    }

    private sealed class V6 : RouteFamily
    {
        private static readonly IPAddress CanaryDestination = IPAddress.Parse("2001:db8:ffff::1");

        public override int Bits => 128;
        public override FieldType AddressType => FieldType.Ipv6;
        public override string[] KeyColumns { get; } = ["prefixlen", "addr.hi", "addr.lo"];
        public override string[] ValueColumns { get; } = ["ifindex", "nexthop.hi", "nexthop.lo"];
        public override string ExamplePrefix => "2001:db8:1::/48";

        public override string? PrefixProblem(ReadOnlySpan<char> text, bool inFile, out UInt128 network, out int length)
        {
            string expected = text.Contains('.') && !text.Contains(':')
                ? "the IPv6 plugin routes IPv6 sources (use SourcePolicy for IPv4)"
                : "expected an IPv6 CIDR such as 2001:db8:1::/48";
            if (Prefixes.Ipv6Problem(text, expected, out network, out length) is { } problem)
                return problem;
            return Ipv6Text.WithinScoped(network, length) ? $"invalid prefix '{text}': link-local, multicast and unspecified sources are never routed" : null;
        }

        public override string? NextHopProblem(ReadOnlySpan<char> text, bool inFile, out UInt128 via) => NextHops.Ipv6Problem(text, out via);

        public override void AddRow(EntryTable table, int length, UInt128 network, int ifindex, UInt128 via) =>
            table.Add([(ulong)length, (ulong)(network >> 64), (ulong)network], [(ulong)ifindex, (ulong)(via >> 64), (ulong)via]);

        public override IPAddress ToAddress(UInt128 address) => Ipv6Text.ToAddress(address);

        public override UInt128 CanarySource(UInt128 network) => network == 0 ? 1 : network;

        public override byte[] CanaryFrame(UInt128 source) => CanaryFrames.Ipv6Udp(ToAddress(source), CanaryDestination);
    }
}
