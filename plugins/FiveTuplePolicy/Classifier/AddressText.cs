using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.FiveTuplePolicy.Classifier;

/// <summary>
/// Addresses of either family as text and as numbers (first byte most significant; IPv4 in the low 32 bits), on top
/// of the plugins' shared strict parsers (<see cref="Ipv4Text"/>: no octal, no shorthand; <see cref="Ipv6Text"/>).
/// </summary>
internal static class AddressText
{
    /// <summary>An IPv4 dotted quad or an IPv6 address (no brackets, no zone, no length), and its family.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out IpFamily family, out UInt128 address)
    {
        address = 0;
        family = text.Contains(':') ? IpFamily.IPv6 : IpFamily.IPv4;
        if (family == IpFamily.IPv6)
            return !text.Contains('/') && Ipv6Text.TryParsePrefix(text, out address, out _);
        bool ok = Ipv4Text.TryParse(text, out uint v4);
        address = v4;
        return ok;
    }

    public static string Format(IpFamily family, UInt128 address) =>
        family == IpFamily.IPv4 ? Ipv4Text.ToAddress((uint)address).ToString() : Ipv6Text.ToAddress(address).ToString();
}
