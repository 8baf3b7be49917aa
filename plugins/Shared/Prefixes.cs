using System.Globalization;
using PluginHost.Contract;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// Prefixes in settings and routes files, one wording for every plugin: "invalid prefix 'TEXT': WHY", and host bits
/// refused with the network suggested (silently masking would match a different set of addresses than the operator
/// wrote).
/// </summary>
internal static class Prefixes
{
    /// <summary>
    /// What is wrong with an IPv4 prefix (strict dotted quad, a bare address is a /32), or null.
    /// <paramref name="expected"/> follows "invalid prefix 'TEXT': " when the text does not parse (null: nothing follows).
    /// </summary>
    public static string? Ipv4Problem(ReadOnlySpan<char> text, string? expected, out uint network, out int length)
    {
        if (!Ipv4Text.TryParsePrefix(text, out network, out length))
            return Invalid(text, expected);
        uint masked = Ipv4Text.Mask(network, length);
        return masked == network ? null : HostBits(text, Ipv4Text.ToAddress(masked).ToString(), length);
    }

    /// <summary>What is wrong with an IPv6 prefix (strict text, a bare address is a /128), or null.</summary>
    public static string? Ipv6Problem(ReadOnlySpan<char> text, string? expected, out UInt128 network, out int length)
    {
        if (!Ipv6Text.TryParsePrefix(text, out network, out length))
            return Invalid(text, expected);
        var masked = Ipv6Text.Mask(network, length);
        return masked == network ? null : HostBits(text, Ipv6Text.ToAddress(masked).ToString(), length);
    }

    /// <summary>
    /// An IPv4 prefix from settings: a problem is reported at <paramref name="node"/>. A missing node is the caller's
    /// to decide (it reads as an empty text here).
    /// </summary>
    public static bool TryParseIpv4(SettingsNode node, IStageContext context, string expected, out uint network, out int length)
    {
        if (Ipv4Problem(node.Scalar ?? "", expected, out network, out length) is not { } problem)
            return true;
        context.Error(node, problem);
        return false;
    }

    /// <summary>
    /// Split "ADDRESS/LEN" (or a bare address, meaning <paramref name="bits"/>): the length in decimal, no leading zeros,
    /// at most <paramref name="bits"/>.
    /// </summary>
    public static bool TrySplitLength(ReadOnlySpan<char> text, int bits, out ReadOnlySpan<char> address, out int length)
    {
        address = text;
        length = bits;
        int slash = text.IndexOf('/');
        if (slash < 0)
            return true;
        var digits = text[(slash + 1)..];
        address = text[..slash];
        return digits.Length is > 0 and <= 3 && (digits.Length == 1 || digits[0] != '0')
            && int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out length) && length <= bits;
    }

    private static string Invalid(ReadOnlySpan<char> text, string? expected) =>
        expected is null ? $"invalid prefix '{text}'" : $"invalid prefix '{text}': {expected}";

    private static string HostBits(ReadOnlySpan<char> text, string network, int length) =>
        $"invalid prefix '{text}': host bits are set (did you mean {network}/{length}?)";
}
