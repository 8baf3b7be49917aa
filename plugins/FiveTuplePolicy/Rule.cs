using System.Globalization;
using System.Net;
using PluginHost.Contract;
using PluginHost.Plugins.FiveTuplePolicy.Classifier;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.FiveTuplePolicy;

/// <summary>What the first rule that matches a packet does with it.</summary>
internal enum RuleAction
{
    /// <summary>Out of an interface, to a next hop (or the packet's destination).</summary>
    Redirect = 1,
    Drop = 2,
    /// <summary>To the kernel, which routes it by its own table.</summary>
    Pass = 3,
    /// <summary>On to the next stage of the pipeline, counted as matched.</summary>
    Next = 4,
}

/// <summary>
/// One rule: what it matches and what it does. <paramref name="Where"/> names it in messages ("rule 'web'",
/// "rules[3]", "acl.rules:12"); <paramref name="Via"/> is the next hop as a number (IPv4 in the low 32 bits; 0: the
/// packet's destination); <paramref name="Ifindex"/> is 0 for a withdrawn redirect (its packets go to the kernel).
/// </summary>
internal sealed record PolicyRule(string Name, string Where, RuleMatch Match, RuleAction Action, int Ifindex, UInt128 Via)
{
    private uint _tag;

    /// <summary>Which rule owns a position's hit counters: the name's hash for a named rule, else the rule's text's.
    /// Computed once: a rules file's rules are kept (cached) across applies.</summary>
    public uint Tag
    {
        get
        {
            if (_tag != 0)
                return _tag;
            uint hash = 2166136261;
            foreach (char c in Name.Length > 0 ? "name:" + Name : $"{Match} {Action} {Ifindex} {Via}")
                hash = (hash ^ c) * 16777619;
            return _tag = hash == 0 ? 1 : hash;
        }
    }
}

/// <summary>Reads one rule from settings, reporting every problem at its field.</summary>
internal static class RuleParser
{
    private static readonly Dictionary<string, byte> Protocols = new(StringComparer.OrdinalIgnoreCase)
    {
        ["tcp"] = 6, ["udp"] = 17, ["icmp"] = 1, ["icmpv6"] = 58, ["gre"] = 47, ["esp"] = 50, ["sctp"] = 132,
    };

    public static readonly string[] Fields = ["name", "protocol", "from", "to", "sport", "dport", "action", "interface", "via"];

    public static PolicyRule? Parse(SettingsNode node, int index, IStageContext context)
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
        ok &= TryProtocol(node["protocol"], context, out byte protoLow, out byte protoHigh);
        ok &= TryPrefix(node["from"], context, out var sourceFamily, out var source, out int sourceLength);
        ok &= TryPrefix(node["to"], context, out var destinationFamily, out var destination, out int destinationLength);
        if (sourceFamily is { } sf && destinationFamily is { } df && sf != df)
        {
            context.Error(node["to"], $"'to' is {df} but 'from' is {sf}: a rule is one family");
            ok = false;
        }
        var family = sourceFamily ?? destinationFamily ?? IpFamily.IPv4;
        ok &= TryPorts(node["sport"], context, out bool sportSet, out ushort sportLow, out ushort sportHigh);
        ok &= TryPorts(node["dport"], context, out bool dportSet, out ushort dportLow, out ushort dportHigh);
        if ((sportSet || dportSet) && !(protoLow == protoHigh && protoLow is 6 or 17 or 132))
        {
            context.Error(node[sportSet ? "sport" : "dport"], "ports need 'protocol: tcp', 'udp' or 'sctp'");
            ok = false;
        }
        bool actionOk = TryAction(node, context, out var action);
        ok &= actionOk;
        int ifindex = 0;
        UInt128 via = 0;
        if (actionOk && action == RuleAction.Redirect)
            ok &= TryOutput(node, context, family, out ifindex, out via);
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
        var match = new RuleMatch(family, protoLow, protoHigh, source, sourceLength, destination, destinationLength,
            sportLow, sportHigh, dportLow, dportHigh);
        return new PolicyRule(name, name.Length > 0 ? $"rule '{name}'" : $"rules[{index}]", match, action, ifindex, via);
    }

    /// <summary>The output of a redirect: interface (withdrawn when missing or down) and next hop of the rule's family.</summary>
    private static bool TryOutput(SettingsNode node, IStageContext context, IpFamily family, out int ifindex, out UInt128 via)
    {
        ifindex = 0;
        via = 0;
        var viaNode = node["via"];
        IPAddress? hop = null;
        if (!viaNode.IsMissing)
        {
            string text = viaNode.Scalar ?? "";
            uint v4 = 0;
            string? problem = family == IpFamily.IPv4 ? NextHops.Ipv4Problem(text, "198.18.3.2", out v4) : NextHops.Ipv6Problem(text, out via);
            if (problem is not null)
            {
                context.Error(viaNode, problem + (IPAddress.TryParse(text, out var other) && (other.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6) != (family == IpFamily.IPv6)
                    ? $" (the rule is {family})" : ""));
                return false;
            }
            if (family == IpFamily.IPv4)
                via = v4;
            hop = IPAddress.Parse(text);
        }
        return Interfaces.TryResolve(context, node["interface"], hop, viaNode, out ifindex);
    }

    private static bool TryProtocol(SettingsNode node, IStageContext context, out byte low, out byte high)
    {
        low = 0;
        high = 255;
        if (node.IsMissing)
            return true;
        string text = node.Scalar ?? "";
        if (text.Equals("any", StringComparison.OrdinalIgnoreCase))
            return true;
        if (Protocols.TryGetValue(text, out low) || byte.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out low))
        {
            high = low;
            return true;
        }
        context.Error(node, $"invalid protocol '{text}': expected tcp, udp, sctp, icmp, icmpv6, gre, esp, any or a number 0-255");
        return false;
    }

    private static bool TryPrefix(SettingsNode node, IStageContext context, out IpFamily? family, out UInt128 network, out int length)
    {
        family = null;
        network = 0;
        length = 0;
        if (node.IsMissing)
            return true;
        string text = node.Scalar ?? "";
        bool v6 = text.Contains(':');
        uint v4 = 0;
        string? problem = v6
            ? Prefixes.Ipv6Problem(text, "expected an IPv4 or IPv6 address or prefix such as 198.18.1.0/24 or 2001:db8::/32", out network, out length)
            : Prefixes.Ipv4Problem(text, "expected an IPv4 or IPv6 address or prefix such as 198.18.1.0/24 or 2001:db8::/32", out v4, out length);
        if (problem is not null)
        {
            context.Error(node, problem);
            return false;
        }
        if (!v6)
            network = v4;
        family = v6 ? IpFamily.IPv6 : IpFamily.IPv4;
        return true;
    }

    /// <summary>A port (443) or an inclusive range (1024-65535).</summary>
    public static bool TryPorts(SettingsNode node, IStageContext context, out bool set, out ushort low, out ushort high)
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
            context.Error(rule, "missing 'action' (redirect with an 'interface', drop, pass or next)");
            return false;
        }
        if (ParseAction(node.Scalar) is { } known)
        {
            action = known;
            return true;
        }
        context.Error(node, $"invalid action '{node.Scalar}': expected redirect, drop, pass or next");
        return false;
    }

    // Not Enum.TryParse: it reads "drop, pass" as the two OR-ed together, and numbers as values.
    public static RuleAction? ParseAction(string? text) => text?.ToLowerInvariant() switch
    {
        "redirect" => RuleAction.Redirect,
        "drop" => RuleAction.Drop,
        "pass" => RuleAction.Pass,
        "next" => RuleAction.Next,
        _ => null,
    };
}
