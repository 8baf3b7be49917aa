using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.SourcePolicy;

/// <summary>
/// Source-based policy routing: packets whose IPv4 source falls in a configured prefix leave by
/// that route's interface and next hop (longest prefix wins); everything else follows the kernel.
/// </summary>
/// <example>
/// settings:
///   routes:
///     - from: 198.18.1.16/28
///       interface: up2
///       via: 198.18.3.2
/// </example>
internal sealed class SourcePolicyPlugin() : SourceRoutesPlugin("source_policy.c.sbn", RouteFamily.Ipv4, "route", "", "next hop (default: the packet's destination)")
{
    public override string Name => "SourcePolicy";

    public override string Description => "Route IPv4 packets by source prefix (longest match) to an interface and next hop.";
}
