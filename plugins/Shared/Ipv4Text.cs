using System.Net;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// Strict IPv4 text: four decimal octets, no leading zeros, nothing else. <see cref="IPAddress.TryParse(string, out IPAddress)"/>
/// also accepts octal ("010.0.0.1" is 8.0.0.1), hex and shorthand ("10.1" is 10.0.0.1), which
/// would route something other than what the operator wrote.
/// Linked as source into each plugin (plugins/Shared), so internal: it is no part of the contract.
/// </summary>
internal static class Ipv4Text
{
    /// <summary>Parse "a.b.c.d/len" (a bare address is a /32) into the address as a number (a is the most significant byte) and the length.</summary>
    public static bool TryParsePrefix(ReadOnlySpan<char> text, out uint address, out int length)
    {
        address = 0;
        return Prefixes.TrySplitLength(text, 32, out var dotted, out length) && TryParse(dotted, out address);
    }

    /// <summary>Parse a dotted quad into a number (a is the most significant byte).</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out uint address)
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
                return false; // not a digit, a leading zero, or more than three digits
            value = value * 10 + (c - '0');
            digits++;
            if (value > 255)
                return false;
        }
        return octets == 4;
    }

    /// <summary>The address of a number (a is the most significant byte).</summary>
    public static IPAddress ToAddress(uint address) =>
        new([(byte)(address >> 24), (byte)(address >> 16), (byte)(address >> 8), (byte)address]);

    /// <summary>The address with every bit past <paramref name="length"/> cleared.</summary>
    public static uint Mask(uint address, int length) => length == 0 ? 0 : address & (uint.MaxValue << (32 - length));

    /// <summary>
    /// A next hop a packet can be sent to: not 0.0.0.0, not the limited broadcast, not multicast (224.0.0.0/4).
    /// One rule for every plugin.
    /// </summary>
    public static bool IsUnicast(uint address) => address != 0 && address != uint.MaxValue && address >> 28 != 0xE;
}
