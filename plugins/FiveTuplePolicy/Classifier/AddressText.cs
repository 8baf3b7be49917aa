using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace PluginHost.Plugins.FiveTuplePolicy.Classifier;

/// <summary>
/// Addresses as text and as numbers (first byte most significant; IPv4 in the low 32 bits). Strict on IPv4
/// (four decimal octets, no leading zeros): <see cref="IPAddress.TryParse(string, out IPAddress)"/> would read
/// "010.0.0.1" as octal and "10.1" as 10.0.0.1.
/// </summary>
internal static class AddressText
{
    /// <summary>An IPv4 dotted quad or an IPv6 address (no brackets, no zone), and its family.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out IpFamily family, out UInt128 address)
    {
        address = 0;
        family = text.Contains(':') ? IpFamily.IPv6 : IpFamily.IPv4;
        if (family == IpFamily.IPv4)
        {
            bool ok = TryParseIpv4(text, out uint v4);
            address = v4;
            return ok;
        }
        if (text.IndexOfAny('[', ']', '%') >= 0 || !IPAddress.TryParse(text, out var parsed)
            || parsed.AddressFamily != AddressFamily.InterNetworkV6)
            return false;
        Span<byte> bytes = stackalloc byte[16];
        parsed.TryWriteBytes(bytes, out _);
        address = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        return true;
    }

    public static bool TryParseIpv4(ReadOnlySpan<char> text, out uint address)
    {
        address = 0;
        int octets = 0, value = 0, digits = 0;
        for (int i = 0; i <= text.Length; i++)
        {
            if (i == text.Length || text[i] == '.')
            {
                if (digits == 0 || octets == 4)
                    return false;
                address = (address << 8) | (uint)value;
                octets++;
                value = digits = 0;
                continue;
            }
            char c = text[i];
            if (c is < '0' or > '9' || (digits == 1 && value == 0) || digits == 3)
                return false; // not a digit, a leading zero, or a fourth digit
            value = value * 10 + (c - '0');
            digits++;
            if (value > 255)
                return false;
        }
        return octets == 4;
    }

    public static string Format(IpFamily family, UInt128 address)
    {
        if (family == IpFamily.IPv4)
        {
            uint v = (uint)address;
            return $"{v >> 24}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}";
        }
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, address);
        return new IPAddress(bytes).ToString();
    }
}
