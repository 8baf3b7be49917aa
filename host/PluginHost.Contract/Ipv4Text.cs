using System.Net;

namespace PluginHost.Contract;

/// <summary>
/// Strict IPv4 text: four decimal octets, no leading zeros, nothing else. <see cref="IPAddress.TryParse(string, out IPAddress)"/>
/// also accepts octal ("010.0.0.1" is 8.0.0.1), hex and shorthand ("10.1" is 10.0.0.1), which
/// would route something other than what the operator wrote.
/// </summary>
public static class Ipv4Text
{
    /// <summary>Parse a dotted-quad address.</summary>
    public static bool TryParseAddress(string? text, out IPAddress address)
    {
        address = IPAddress.None;
        if (string.IsNullOrEmpty(text))
            return false;
        var parts = text.Split('.');
        if (parts.Length != 4)
            return false;
        var bytes = new byte[4];
        for (int i = 0; i < 4; i++)
        {
            string p = parts[i];
            if (p.Length is 0 or > 3 || !p.All(char.IsAsciiDigit) || (p.Length > 1 && p[0] == '0'))
                return false;
            int value = int.Parse(p);
            if (value > 255)
                return false;
            bytes[i] = (byte)value;
        }
        address = new IPAddress(bytes);
        return true;
    }

    /// <summary>Parse "a.b.c.d/len" (or a bare address, meaning /32). Host bits are not checked here.</summary>
    public static bool TryParsePrefix(string? text, out IPAddress address, out int length)
    {
        length = 32;
        address = IPAddress.None;
        if (string.IsNullOrEmpty(text))
            return false;
        int slash = text.IndexOf('/');
        if (slash >= 0)
        {
            string len = text[(slash + 1)..];
            if (len.Length is 0 or > 2 || !len.All(char.IsAsciiDigit) || (len.Length > 1 && len[0] == '0'))
                return false;
            length = int.Parse(len);
            if (length > 32)
                return false;
        }
        return TryParseAddress(slash >= 0 ? text[..slash] : text, out address);
    }
}
