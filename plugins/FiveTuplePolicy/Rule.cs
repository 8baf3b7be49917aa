using System.Globalization;
using PluginHost.Contract;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.FiveTuplePolicy;

public enum RuleAction
{
    Redirect = 1,
    Drop = 2,
    Pass = 3,
}

/// <summary>
/// One rule: what it matches (0 protocol = any, 0 mask = any address, full port ranges when <see cref="Ports"/> is
/// false) and what it does. Addresses are host-order numbers, as the template compares them.
/// </summary>
public sealed record Rule(string Name, byte Protocol, uint Source, uint SourceMask, uint Destination, uint DestinationMask,
    bool Ports, ushort SourceLow, ushort SourceHigh, ushort DestinationLow, ushort DestinationHigh,
    RuleAction Action, int Ifindex, uint Via)
{
    /// <summary>What the datapath does with a packet, in C#: the same comparisons, for canaries and tests.</summary>
    public bool Matches(byte protocol, uint source, uint destination, bool hasPorts, ushort sourcePort, ushort destinationPort) =>
        (Protocol == 0 || Protocol == protocol)
        && (source & SourceMask) == Source
        && (destination & DestinationMask) == Destination
        && (!Ports || (hasPorts && sourcePort >= SourceLow && sourcePort <= SourceHigh
                                && destinationPort >= DestinationLow && destinationPort <= DestinationHigh));

    /// <summary>The constants the template reads for rule <paramref name="index"/>.</summary>
    public IEnumerable<KeyValuePair<string, long>> Constants(int index)
    {
        string p = $"r{index}_";
        yield return new(p + "proto", Protocol);
        yield return new(p + "src", Source);
        yield return new(p + "src_mask", SourceMask);
        yield return new(p + "dst", Destination);
        yield return new(p + "dst_mask", DestinationMask);
        yield return new(p + "ports", Ports ? 1 : 0);
        yield return new(p + "sport_lo", SourceLow);
        yield return new(p + "sport_hi", SourceHigh);
        yield return new(p + "dport_lo", DestinationLow);
        yield return new(p + "dport_hi", DestinationHigh);
        yield return new(p + "action", (long)Action);
        yield return new(p + "ifindex", Ifindex);
        yield return new(p + "via", Via);
    }
}

/// <summary>Reads one rule from settings, reporting every problem at its field.</summary>
internal static class RuleParser
{
    private static readonly Dictionary<string, byte> Protocols = new(StringComparer.OrdinalIgnoreCase)
    {
        ["any"] = 0, ["tcp"] = 6, ["udp"] = 17, ["icmp"] = 1, ["gre"] = 47, ["esp"] = 50, ["sctp"] = 132,
    };

    public static readonly string[] Fields = ["name", "protocol", "from", "to", "sport", "dport", "action", "interface", "via"];

    public static Rule? Parse(SettingsNode node, IStageContext context)
    {
        if (node.Kind != SettingsKind.Mapping)
        {
            context.Error(node, "expected a rule: a mapping with any of " + string.Join(", ", Fields));
            return null;
        }
        node.RejectUnknownKeys(context, Fields);
        bool ok = true;
        string name = "";
        if (!node["name"].IsMissing)
        {
            name = node["name"].Scalar ?? "";
            if (name.Length is 0 or > 32 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                context.Error(node["name"], $"invalid name '{name}': 1 to 32 letters, digits, '-', '_' or '.'");
                ok = false;
            }
        }
        ok &= TryProtocol(node["protocol"], context, out byte protocol);
        ok &= TryPrefix(node["from"], context, out uint source, out uint sourceMask);
        ok &= TryPrefix(node["to"], context, out uint destination, out uint destinationMask);
        ok &= TryPorts(node["sport"], context, out bool sportSet, out ushort sportLow, out ushort sportHigh);
        ok &= TryPorts(node["dport"], context, out bool dportSet, out ushort dportLow, out ushort dportHigh);
        if ((sportSet || dportSet) && protocol is not (6 or 17))
        {
            context.Error(node[sportSet ? "sport" : "dport"], "ports need 'protocol: tcp' or 'protocol: udp'");
            ok = false;
        }
        // Interface and next hop are checked against a valid action only.
        bool actionOk = TryAction(node, context, out var action);
        ok &= actionOk;
        int ifindex = 0;
        uint via = 0;
        if (actionOk && action == RuleAction.Redirect)
        {
            // Missing or down: the rule is withdrawn (ifindex 0: its packets go to the kernel), not refused.
            bool hopOk = NextHops.TryParseIpv4(node["via"], context, out via);
            ok &= hopOk && Interfaces.TryResolve(context, node["interface"], via == 0 ? null : Ipv4Text.ToAddress(via), node["via"], out ifindex);
        }
        else if (actionOk)
        {
            foreach (var field in new[] { "interface", "via" }.Where(f => !node[f].IsMissing))
            {
                context.Error(node[field], $"'{field}' applies only to 'action: redirect'");
                ok = false;
            }
        }
        if (!ok)
            return null;
        return new Rule(name, protocol, source, sourceMask, destination, destinationMask, sportSet || dportSet,
            sportLow, sportHigh, dportLow, dportHigh, action, ifindex, via);
    }

    private static bool TryProtocol(SettingsNode node, IStageContext context, out byte protocol)
    {
        protocol = 0;
        if (node.IsMissing)
            return true;
        string text = node.Scalar ?? "";
        if (Protocols.TryGetValue(text, out protocol))
            return true;
        if (byte.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out protocol))
            return true;
        context.Error(node, $"invalid protocol '{text}': expected tcp, udp, icmp, gre, esp, sctp, any or a number 0-255");
        return false;
    }

    private static bool TryPrefix(SettingsNode node, IStageContext context, out uint network, out uint mask)
    {
        network = mask = 0;
        if (node.IsMissing)
            return true;
        if (!Prefixes.TryParseIpv4(node, context, "expected an IPv4 address or CIDR such as 198.18.1.0/24", out network, out int length))
            return false;
        mask = length == 0 ? 0 : uint.MaxValue << (32 - length);
        return true;
    }

    private static bool TryPorts(SettingsNode node, IStageContext context, out bool set, out ushort low, out ushort high)
    {
        set = false;
        low = 0;
        high = ushort.MaxValue;
        if (node.IsMissing)
            return true;
        string text = node.Scalar ?? "";
        int dash = text.IndexOf('-');
        bool parsed = dash < 0
            ? ushort.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out low)
            : ushort.TryParse(text.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out low)
              && ushort.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out high);
        if (dash < 0)
            high = low;
        if (!parsed || low > high)
        {
            context.Error(node, $"invalid port '{text}': expected a port (443) or a range (1024-65535) within 0-65535");
            return false;
        }
        set = true;
        return true;
    }

    private static bool TryAction(SettingsNode rule, IStageContext context, out RuleAction action)
    {
        var node = rule["action"];
        action = RuleAction.Redirect;
        if (node.IsMissing)
        {
            if (!rule["interface"].IsMissing)
                return true;
            context.Error(rule, "missing 'action' (redirect with an 'interface', drop or pass)");
            return false;
        }
        // Not Enum.TryParse: it reads "drop, pass" as the two OR-ed together, and numbers as values.
        RuleAction? parsed = node.Scalar?.ToLowerInvariant() switch
        {
            "redirect" => RuleAction.Redirect,
            "drop" => RuleAction.Drop,
            "pass" => RuleAction.Pass,
            _ => null,
        };
        if (parsed is { } known)
        {
            action = known;
            return true;
        }
        context.Error(node, $"invalid action '{node.Scalar}': expected redirect, drop or pass");
        return false;
    }
}
