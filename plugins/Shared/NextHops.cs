using System.Net;
using System.Net.Sockets;
using PluginHost.Contract;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// Next hops: one unicast rule for every plugin (IPv4: not 0.0.0.0, the limited broadcast or multicast; IPv6: not ::
/// or multicast, link-local allowed with the route's interface as its zone), and the wordings of a refusal.
/// </summary>
internal static class NextHops
{
    /// <summary>
    /// An optional IPv4 next hop from settings (0 when missing: the packet's own destination), a problem reported at
    /// <paramref name="node"/> as "expected a unicast IPv4 address such as 198.18.3.2".
    /// </summary>
    public static bool TryParseIpv4(SettingsNode node, IStageContext context, out uint via)
    {
        via = 0;
        if (node.IsMissing)
            return true;
        if (Ipv4Problem(node.Scalar, "198.18.3.2", out via) is not { } problem)
            return true;
        context.Error(node, problem);
        return false;
    }

    /// <summary>What is wrong with an IPv4 next hop, in one phrase ("expected a unicast IPv4 address[ such as EXAMPLE]"), or null.</summary>
    public static string? Ipv4Problem(ReadOnlySpan<char> text, string? example, out uint via) =>
        Ipv4Text.TryParse(text, out via) && Ipv4Text.IsUnicast(via) ? null
            : $"invalid next hop '{text}': expected a unicast IPv4 address" + (example is null ? "" : $" such as {example}");

    /// <summary>What is wrong with an IPv4 next hop, saying which rule it breaks (its form or unicast), or null.</summary>
    public static string? Ipv4ProblemByRule(ReadOnlySpan<char> text, out uint via)
    {
        if (!Ipv4Text.TryParse(text, out via))
            return $"invalid next hop '{text}': expected an IPv4 address such as 198.18.3.2";
        return Ipv4Text.IsUnicast(via) ? null : NotUnicast(text);
    }

    /// <summary>What is wrong with an IPv6 next hop (link-local allowed, the route's interface being its zone), or null.</summary>
    public static string? Ipv6Problem(ReadOnlySpan<char> text, out UInt128 via)
    {
        via = 0;
        if (text.IndexOfAny('[', ']') >= 0 || !IPAddress.TryParse(text, out var parsed) || parsed.AddressFamily != AddressFamily.InterNetworkV6)
            return $"invalid next hop '{text}': expected an IPv6 address such as fe80::2 or 2001:db8::2";
        if (parsed.ScopeId != 0 || text.Contains('%'))
            return $"invalid next hop '{text}': no zone index (the route's interface is the zone)";
        if (parsed.Equals(IPAddress.IPv6Any) || parsed.IsIPv6Multicast)
            return NotUnicast(text);
        via = Ipv6Text.Number(parsed);
        return null;
    }

    private static string NotUnicast(ReadOnlySpan<char> text) => $"invalid next hop '{text}': must be a unicast address";
}
