using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// Strict IPv6 text and IPv6 addresses as numbers (the first byte is the most significant). Strict: no [brackets],
/// %zone or prefix length with leading zeros, which <see cref="IPAddress"/> and <see cref="int"/> would accept.
/// </summary>
internal static class Ipv6Text
{
    /// <summary>Parse "address/len" (or a bare address, meaning /128). Host bits are not checked here.</summary>
    public static bool TryParsePrefix(ReadOnlySpan<char> text, out UInt128 address, out int length)
    {
        address = 0;
        if (!Prefixes.TrySplitLength(text, 128, out var text6, out length) || text6.IndexOfAny('[', ']', '%') >= 0
            || !IPAddress.TryParse(text6, out var parsed) || parsed.AddressFamily != AddressFamily.InterNetworkV6)
            return false;
        address = Number(parsed);
        return true;
    }

    public static UInt128 Number(IPAddress address) => BinaryPrimitives.ReadUInt128BigEndian(address.GetAddressBytes());

    public static IPAddress ToAddress(UInt128 address)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, address);
        return new IPAddress(bytes);
    }

    /// <summary>The address with every bit past <paramref name="length"/> cleared.</summary>
    public static UInt128 Mask(UInt128 address, int length) => length == 0 ? UInt128.Zero : address & (UInt128.MaxValue << (128 - length));

    /// <summary>
    /// Inside multicast (ff00::/8) or link-local (fe80::/10) space, or the unspecified address: a router never
    /// forwards for them (the templates' ph_ipv6_scoped).
    /// </summary>
    public static bool WithinScoped(UInt128 prefix, int length) =>
        (length >= 8 && prefix >> 120 == 0xff) || (length >= 10 && prefix >> 118 == 0x3fa) || (length == 128 && prefix == 0);
}
