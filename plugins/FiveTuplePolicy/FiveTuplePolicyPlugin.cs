using PluginHost.Contract;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.FiveTuplePolicy;

/// <summary>
/// Policy by 5-tuple: ordered IPv4 rules over protocol, source and destination prefixes and source and
/// destination ports; the first rule that matches redirects the packet (interface, next hop), drops it or
/// passes it to the kernel, and a packet no rule matches goes on to the next stage. Rules are compiled into
/// the stage (constants, no map lookups), so a change is a new generation, swapped in atomically.
/// </summary>
/// <example>
/// settings:
///   rules:
///     - name: web-via-up2
///       protocol: tcp
///       from: 198.18.1.0/24
///       dport: 443
///       interface: up2
///       via: 198.18.3.2
///     - protocol: udp
///       dport: 5000-5999
///       action: drop
/// </example>
public sealed class FiveTuplePolicyPlugin : IRoutingPlugin, IRuntimeCommands
{
    /// <summary>Rules per stage: each is code in the stage program, which must stay small for the verifier and the i-cache.</summary>
    public const int MaxRules = 64;

    private const int MaxCanaries = 4;
    private const uint CanarySource = 0xC000020A; // 192.0.2.10
    private const uint CanaryDestination = 0xC0000201; // 192.0.2.1

    public string Name => "FiveTuplePolicy";

    public string Description => "Ordered IPv4 rules on protocol, addresses and ports: redirect, drop or pass; the first match decides.";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(FiveTuplePolicyPlugin).Assembly, "five_tuple_policy.c.sbn");

    public IReadOnlyList<MapSchema> Maps { get; } = [];

    public IReadOnlyList<RuntimeCommand> Commands { get; } =
    [
        new("rule", "add", "Add a named rule after the others (or replace the rule of that name)", "rules", "name", RuntimeAction.Add,
        [
            new("name", "the rule's name, to remove it later"),
            new("protocol", "tcp, udp, icmp, ... or a number (default: any)", Required: false),
            new("from", "source prefix (default: any)", Required: false),
            new("to", "destination prefix (default: any)", Required: false),
            new("sport", "source port or range, tcp/udp (default: any)", Required: false),
            new("dport", "destination port or range, tcp/udp (default: any)", Required: false),
            new("action", "redirect (default with --interface), drop or pass", Required: false),
            new("interface", "output interface, for redirect", Required: false),
            new("via", "next hop, for redirect (default: the packet's destination)", Required: false),
        ]),
        new("rule", "del", "Remove the rule of that name", "rules", "name", RuntimeAction.Remove, [new("name", "name of the rule to remove")]),
        new("rule", "list", "Show the rules in effect, in order", "rules", "name", RuntimeAction.List, []),
    ];

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        if (settings.IsMissing)
            return Setup([]);
        if (settings.Kind != SettingsKind.Mapping)
        {
            context.Error(settings, "expected a mapping with 'rules'");
            return Setup([]);
        }
        settings.RejectUnknownKeys(context, "rules");
        var list = settings["rules"];
        if (!list.IsMissing && list.Kind != SettingsKind.Sequence)
        {
            context.Error(list, "expected a list of rules");
            return Setup([]);
        }
        if (list.Items.Count > MaxRules)
            context.Error(list, $"{list.Items.Count} rules: at most {MaxRules} per stage (each rule is code in the stage; " +
                "for large tables use SourcePolicy's maps, or split the rules over several FiveTuplePolicy stages)");
        var rules = new List<Rule>();
        var names = new Dictionary<string, string>();
        foreach (var node in list.Items.Take(MaxRules))
        {
            if (RuleParser.Parse(node, context) is not { } rule)
                continue;
            if (rule.Name.Length > 0 && !names.TryAdd(rule.Name, node["name"].Path))
            {
                context.Error(node["name"], $"duplicate rule name '{rule.Name}' (first given at {names[rule.Name]})");
                continue;
            }
            rules.Add(rule);
        }
        return Setup(rules);
    }

    private static StageSetup Setup(List<Rule> rules)
    {
        var constants = new Dictionary<string, long> { ["rules"] = rules.Count };
        for (int i = 0; i < rules.Count; i++)
            foreach (var (name, value) in rules[i].Constants(i))
                constants[name] = value;
        return new StageSetup([], constants) { Canaries = Canaries(rules) };
    }

    // For the first few rules, a packet built to match the rule; its expected verdict is what the first rule
    // that matches it does (an earlier rule may take it), computed in C# with the datapath's comparisons.
    private static List<CanaryPacket> Canaries(List<Rule> rules)
    {
        var canaries = new List<CanaryPacket>();
        for (int i = 0; i < rules.Count && canaries.Count < MaxCanaries; i++)
        {
            var rule = rules[i];
            byte protocol = rule.Protocol == 0 ? (byte)17 : rule.Protocol;
            uint source = rule.SourceMask == 0 ? CanarySource : rule.Source;
            uint destination = rule.DestinationMask == 0 ? CanaryDestination : rule.Destination;
            bool ports = protocol is 6 or 17;
            ushort sport = rule.Ports ? rule.SourceLow : (ushort)40000;
            ushort dport = rule.Ports ? rule.DestinationLow : (ushort)9;
            var decider = rules.First(r => r.Matches(protocol, source, destination, ports, sport, dport));
            var (verdict, ifindex) = decider.Action switch
            {
                RuleAction.Redirect when decider.Ifindex == 0 => (CanaryVerdict.Pass, 0), // withdrawn: the kernel routes it
                RuleAction.Redirect => (CanaryVerdict.Redirect, decider.Ifindex),
                RuleAction.Drop => (CanaryVerdict.Drop, 0),
                _ => (CanaryVerdict.Pass, 0),
            };
            string name = rule.Name.Length > 0 ? $"rule {rule.Name}" : $"rule {i}";
            canaries.Add(new CanaryPacket(name, CanaryFrames.Ipv4(Ipv4Text.ToAddress(source), Ipv4Text.ToAddress(destination), protocol, sport, dport),
                verdict, ifindex));
        }
        return canaries;
    }
}
