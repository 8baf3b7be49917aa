using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.IPv6;

/// <summary>
/// Source-based policy routing for IPv6: packets whose IPv6 source falls in a configured prefix leave by that
/// route's interface and next hop (longest prefix wins); everything else, and every link-local, multicast or
/// unspecified address, follows the kernel. The IPv6 counterpart of SourcePolicy; both can sit in one pipeline.
/// </summary>
/// <example>
/// settings:
///   routes:
///     - from: 2001:db8:1::/48
///       interface: up2
///       via: fe80::2
/// </example>
internal sealed class Ipv6PolicyPlugin() : SourceRoutesPlugin("ipv6_policy.c.sbn", RouteFamily.Ipv6, "route6", "IPv6 ",
    "IPv6 next hop, link-local allowed (default: the packet's destination)")
{
    public override string Name => "IPv6";

    public override string Description => "Route IPv6 packets by source prefix (longest match) to an interface and next hop.";
}
