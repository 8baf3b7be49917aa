using System.Net;
using PluginHost.Contract;
using PluginHost.Plugins.FiveTuplePolicy.Classifier;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.FiveTuplePolicy;

/// <summary>
/// Policy by 5-tuple: ordered rules over protocol, source and destination prefixes (IPv4 or IPv6) and port ranges;
/// the first rule that matches redirects the packet (interface, next hop), drops it, passes it to the kernel or hands
/// it to the next stage, and a packet no rule matches goes on to the next stage. Rules come from settings, then from a
/// rules file. The host builds a decision tree over them (see Classifier/README.md) into double-buffered maps, so a
/// change is map writes switched in by one flip, without compiling, and a packet's cost does not grow with the rules.
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
///   rulesFile: acl.rules
///   defaultAction: next
/// </example>
internal sealed class FiveTuplePolicyPlugin : IRoutingPlugin, IRuntimeCommands, IMapMigration
{
    /// <summary>Rules per stage, settings and file together.</summary>
    public const int MaxRules = 262_144;

    /// <summary>Rules in settings (and added at run time): large sets belong in a rules file. Also where the file's rules
    /// start in the rules array, so that neither moves when the other changes (their counters stay theirs).</summary>
    public const int MaxSettingsRules = 1_024;

    private const int MaxCanaries = 4;
    private const int CanaryCandidates = 64; // rules tried for a canary: each try is a linear match over all rules
    private const int MinimumCapacity = 64;
    private static readonly UInt128 CanarySource = 0xC000020A; // 192.0.2.10
    private static readonly UInt128 CanaryDestination = 0xC0000201; // 192.0.2.1
    private static readonly UInt128 CanarySource6 = UInt128.Parse("20010db8000000000000000000000010", System.Globalization.NumberStyles.HexNumber);
    private static readonly UInt128 CanaryDestination6 = UInt128.Parse("20010db8000000000000000000000001", System.Globalization.NumberStyles.HexNumber);

    public string Name => "FiveTuplePolicy";

    public string Description => "Ordered IPv4/IPv6 rules on protocol, prefixes and port ranges, classified by a decision tree: redirect, drop, pass or next.";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(FiveTuplePolicyPlugin).Assembly, "five_tuple_policy.c.sbn");

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        new("nodes", MapKind.Array, [new("index", FieldType.U32)],
            [new("thr_hi", FieldType.U64), new("thr_lo", FieldType.U64), new("left", FieldType.U32), new("right", FieldType.U32), new("dim", FieldType.U32)],
            MinimumCapacity) { DoubleBuffered = true },
        new("slots", MapKind.Array, [new("index", FieldType.U32)], [new("rule", FieldType.U32)], MinimumCapacity) { DoubleBuffered = true },
        // The four roots: the settings' IPv4 and IPv6 trees (walked first), then the rules file's.
        new("roots", MapKind.Array, [new("index", FieldType.U32)], [new("node", FieldType.U32)], 4) { DoubleBuffered = true },
        new("rules", MapKind.Array, [new("index", FieldType.U32)],
        [
            new("src_hi", FieldType.U64), new("src_lo", FieldType.U64), new("smask_hi", FieldType.U64), new("smask_lo", FieldType.U64),
            new("dst_hi", FieldType.U64), new("dst_lo", FieldType.U64), new("dmask_hi", FieldType.U64), new("dmask_lo", FieldType.U64),
            new("via6", FieldType.Ipv6), new("via4", FieldType.U32), new("ifindex", FieldType.U32), new("tag", FieldType.U32),
            new("sport_lo", FieldType.U16), new("sport_hi", FieldType.U16), new("dport_lo", FieldType.U16), new("dport_hi", FieldType.U16),
            new("proto_lo", FieldType.U8), new("proto_hi", FieldType.U8), new("ports", FieldType.U8), new("action", FieldType.U8),
        ], MinimumCapacity) { DoubleBuffered = true },
        // Written by the datapath: per rule position, which rule owns it (tag) and its packets and bytes.
        new("hits", MapKind.Array, [new("index", FieldType.U32)],
            [new("packets", FieldType.U64), new("bytes", FieldType.U64), new("tag", FieldType.U32)], MinimumCapacity, MapContents.State),
    ];

    public IReadOnlyList<RuntimeCommand> Commands { get; } =
    [
        new("rule", "add", "Add a named rule after the settings' others (or replace the rule of that name)", "rules", "name", RuntimeAction.Add,
        [
            new("name", "the rule's name, to remove it later"),
            new("protocol", "tcp, udp, sctp, icmp, ... or a number (default: any)", Required: false),
            new("from", "source prefix, IPv4 or IPv6 (default: any)", Required: false),
            new("to", "destination prefix, IPv4 or IPv6 (default: any)", Required: false),
            new("sport", "source port or range, tcp/udp/sctp (default: any)", Required: false),
            new("dport", "destination port or range, tcp/udp/sctp (default: any)", Required: false),
            new("action", "redirect (default with --interface), drop, pass or next", Required: false),
            new("interface", "output interface, for redirect", Required: false),
            new("via", "next hop, for redirect (default: the packet's destination)", Required: false),
        ]),
        new("rule", "del", "Remove the rule of that name", "rules", "name", RuntimeAction.Remove, [new("name", "name of the rule to remove")]),
        new("rule", "list", "Show the settings' rules in effect, in order", "rules", "name", RuntimeAction.List, []),
        new("rule", "load", "Use a rules file (ClassBench format, optional action per line): checked after the settings' rules", "rulesFile", "file",
            RuntimeAction.Set, [new("file", "path to the rules file", IsPath: true)]),
    ];

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        var rules = new List<PolicyRule>();
        if (!settings.IsMissing && settings.Kind != SettingsKind.Mapping)
        {
            context.Error(settings, "expected a mapping with 'rules' and/or 'rulesFile'");
            return Setup(rules, [], settings, context);
        }
        if (!settings.IsMissing)
            settings.RejectUnknownKeys(context, "rules", "rulesFile", "defaultAction");
        var list = settings["rules"];
        if (!list.IsMissing && list.Kind != SettingsKind.Sequence)
            context.Error(list, "expected a list of rules");
        else
        {
            var names = new Dictionary<string, string>();
            for (int i = 0; i < list.Items.Count; i++)
            {
                var node = list.Items[i];
                if (RuleParser.Parse(node, i, context) is not { } rule)
                    continue;
                if (rule.Name.Length > 0 && !names.TryAdd(rule.Name, node["name"].Path))
                {
                    context.Error(node["name"], $"duplicate rule name '{rule.Name}' (first given at {names[rule.Name]})");
                    continue;
                }
                rules.Add(rule);
            }
        }
        var defaultAction = RuleAction.Next;
        var actionNode = settings["defaultAction"];
        if (!actionNode.IsMissing)
        {
            if (RuleParser.ParseAction(actionNode.Scalar) is { } parsed && parsed != RuleAction.Redirect)
                defaultAction = parsed;
            else
                context.Error(actionNode, $"invalid default action '{actionNode.Scalar}': expected drop, pass or next (a redirect names its interface on its line)");
        }
        if (rules.Count > MaxSettingsRules)
        {
            context.Error(list, $"{rules.Count:N0} rules in settings: at most {MaxSettingsRules:N0} (put large sets in a rules file: rulesFile)");
            return Setup([], [], settings, context);
        }
        var file = settings["rulesFile"];
        var fileRules = file.IsMissing ? [] : RulesFile.Read(file, context, defaultAction, Math.Max(0, MaxRules - rules.Count));
        if (rules.Count + fileRules.Count > MaxRules)
        {
            context.Error(list, $"{rules.Count + fileRules.Count:N0} rules: at most {MaxRules:N0} per stage");
            return Setup([], [], settings, context);
        }
        return Setup(rules, fileRules, settings, context);
    }

    // Two trees in one set of maps: the rules file's (built once per file, kept while only the settings' rules change)
    // first in the node and slot arrays, then the settings' (small, rebuilt on every rule add). The rules array holds
    // the settings' rules from 0 and the file's from MaxSettingsRules: neither moves when the other changes, so their
    // map entries stay as they are and their counters stay theirs.
    private static StageSetup Setup(List<PolicyRule> settingsRules, IReadOnlyList<PolicyRule> fileRules, SettingsNode settings, IStageContext context)
    {
        FlatTree first;
        FileTables file;
        try
        {
            file = FileTables.Of(fileRules);
            first = TreeBuilder.Build(settingsRules.Select(r => r.Match).ToList());
        }
        catch (ClassifierLimitException e)
        {
            context.Error(settings, e.Message);
            return StageSetup.Empty;
        }
        var second = file.Tree;
        int fileCount = fileRules.Count;
        int ruleSlots = fileCount == 0 ? settingsRules.Count : MaxSettingsRules + fileCount;
        foreach (var warning in Unreachable(settingsRules, first).Concat(file.Warnings))
            context.Warn(settings, warning);
        WarnCoveredBySettings(settingsRules, fileRules, settings, context);

        int nodeCount = second.Nodes.Length + first.Nodes.Length, slotCount = second.Slots.Length + first.Slots.Length;
        // The file's part of every table first, the same objects while the file is unchanged (the host then compares them
        // as memory), then the settings' part, built anew.
        var filePart = file.Part;
        var settingsPart = PartOf(settingsRules, first, nodeBase: (uint)second.Nodes.Length, slotBase: (uint)second.Slots.Length, ruleBase: 0);
        var roots = new EntryTable("roots", ["index"], ["node"], 4);
        roots.Add([0], [(ulong)second.Nodes.Length + FlatTree.Ipv4Root]);
        roots.Add([1], [(ulong)second.Nodes.Length + FlatTree.Ipv6Root]);
        roots.Add([2], [FlatTree.Ipv4Root]);
        roots.Add([3], [FlatTree.Ipv6Root]);
        var sizes = new Dictionary<string, uint>
        {
            ["nodes"] = Capacity(nodeCount),
            ["slots"] = Capacity(slotCount),
            ["rules"] = Capacity(ruleSlots),
            ["hits"] = Capacity(ruleSlots),
        };
        long reserved = 2 * ((long)sizes["nodes"] * 32 + sizes["slots"] * 8L + sizes["rules"] * 104L) + sizes["hits"] * 24L;
        long used = (long)nodeCount * 32 + slotCount * 8L + ruleSlots * 104L;
        var constants = new Dictionary<string, long> { ["max_depth"] = TreeBuilder.MaxDepth, ["leaf_max"] = TreeBuilder.LeafMax };
        string Shape(FlatTree t) => $"{t.Stats.Nodes:N0} nodes ({t.Stats.Leaves:N0} leaves, depth {t.Stats.MaxDepth})";
        return new StageSetup([], constants)
        {
            Tables = [filePart.Nodes, settingsPart.Nodes, filePart.Slots, settingsPart.Slots, roots, filePart.Rules, settingsPart.Rules],
            MapSizes = sizes,
            // Named rules' counters, by position in the rules array and owner tag (only the settings' rules have names).
            ItemCounters = settingsRules.Select((r, i) => (r, i)).Where(p => p.r.Name.Length > 0).Select(p => new ItemCounter(p.r.Name, "hits", (uint)p.i, p.r.Tag)).ToList(),
            Canaries = Canaries(settingsRules, first, fileRules, second),
            Summary = $"{settingsRules.Count:N0} rule{(settingsRules.Count == 1 ? "" : "s")} in settings, {fileCount:N0} in the rules file " +
                      $"({settingsRules.Concat(fileRules).Count(r => r.Match.Family == IpFamily.IPv6):N0} IPv6); trees of {Shape(first)} and {Shape(second)}, " +
                      $"at most {Math.Max(first.Stats.MaxLeafRules, second.Stats.MaxLeafRules)} rules a leaf, {slotCount:N0} slots; " +
                      $"{used / 1048576.0:F1} MiB of tables, {reserved / 1048576.0:F1} MiB reserved (two copies)",
        };
    }

    private sealed record TablePart(EntryTable Nodes, EntryTable Slots, EntryTable Rules);

    /// <summary>
    /// What a rules file's rules become: their tree, their part of every table and their own warnings. Kept with the
    /// rule list, which the rules file cache hands out again while the file is unchanged: a rule add rebuilds none of it.
    /// </summary>
    private sealed record FileTables(FlatTree Tree, TablePart Part, List<string> Warnings)
    {
        private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IReadOnlyList<PolicyRule>, FileTables> Kept = [];

        public static FileTables Of(IReadOnlyList<PolicyRule> rules) => Kept.GetValue(rules, _ =>
        {
            var tree = TreeBuilder.Build(rules.Select(r => r.Match).ToList());
            return new FileTables(tree, PartOf(rules, tree, nodeBase: 0, slotBase: 0, ruleBase: rules.Count == 0 ? 0u : MaxSettingsRules),
                Unreachable(rules, tree));
        });
    }

    private static readonly string[] RuleFields =
    [
        "src_hi", "src_lo", "smask_hi", "smask_lo", "dst_hi", "dst_lo", "dmask_hi", "dmask_lo", "via6.hi", "via6.lo", "via4", "ifindex", "tag",
        "sport_lo", "sport_hi", "dport_lo", "dport_hi", "proto_lo", "proto_hi", "ports", "action",
    ];

    // One tree's nodes, slots and rules, moved to where they sit in the shared arrays.
    private static TablePart PartOf(IReadOnlyList<PolicyRule> rules, FlatTree tree, uint nodeBase, uint slotBase, uint ruleBase)
    {
        var nodes = new EntryTable("nodes", ["index"], ["thr_hi", "thr_lo", "left", "right", "dim"], tree.Nodes.Length);
        for (int i = 0; i < tree.Nodes.Length; i++)
        {
            var n = tree.Nodes[i];
            bool leaf = n.Dim == (uint)TreeDim.Leaf;
            nodes.Add([nodeBase + (ulong)i], [n.ThresholdHigh, n.ThresholdLow, leaf ? slotBase + n.Left : nodeBase + n.Left, leaf ? n.Right : nodeBase + n.Right, n.Dim]);
        }
        var slots = new EntryTable("slots", ["index"], ["rule"], tree.Slots.Length);
        for (int i = 0; i < tree.Slots.Length; i++)
            slots.Add([slotBase + (ulong)i], [ruleBase + tree.Slots[i]]);
        var records = new EntryTable("rules", ["index"], RuleFields, rules.Count);
        for (int i = 0; i < rules.Count; i++)
        {
            var r = tree.Rules[i];
            var rule = rules[i];
            bool v6 = rule.Match.Family == IpFamily.IPv6;
            records.Add([ruleBase + (ulong)i],
            [
                r.SourceHigh, r.SourceLow, r.SourceMaskHigh, r.SourceMaskLow, r.DestinationHigh, r.DestinationLow, r.DestinationMaskHigh, r.DestinationMaskLow,
                v6 ? (ulong)(rule.Via >> 64) : 0, v6 ? (ulong)rule.Via : 0, v6 ? 0 : (ulong)rule.Via, (ulong)rule.Ifindex, rule.Tag,
                r.SourcePortLow, r.SourcePortHigh, r.DestinationPortLow, r.DestinationPortHigh, r.ProtocolLow, r.ProtocolHigh, r.RequiresPorts,
                (ulong)rule.Action,
            ]);
        }
        return new TablePart(nodes, slots, records);
    }

    // Sizes grow in powers of two: a rule added now and then is map writes, not new maps (a new generation).
    private static uint Capacity(int count) => Math.Max(MinimumCapacity, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(count + count / 4)));

    // A rule can never be the first match when one earlier rule covers it (then both share every leaf it is in, the
    // earlier first), or when it is in no leaf at all (earlier rules together cover it). Named with the rule before it.
    private static List<string> Unreachable(IReadOnlyList<PolicyRule> rules, FlatTree tree)
    {
        var warnings = new List<string>();
        var coveredBy = new int[rules.Count];
        Array.Fill(coveredBy, -2); // -2: in no leaf (yet); -1: reachable as far as known
        foreach (var node in tree.Nodes)
        {
            if (node.Dim != (uint)TreeDim.Leaf)
                continue;
            var list = tree.Slots.Slice((int)node.Left, (int)node.Right);
            for (int j = 0; j < list.Length; j++)
            {
                int rule = (int)list[j];
                if (coveredBy[rule] == -2)
                    coveredBy[rule] = -1;
                for (int i = 0; i < j && coveredBy[rule] == -1; i++)
                    if (Covers(rules[(int)list[i]].Match, rules[rule].Match))
                        coveredBy[rule] = (int)list[i];
            }
        }
        int unreachable = 0;
        for (int r = 0; r < rules.Count; r++)
        {
            if (coveredBy[r] == -1 || ++unreachable > 20)
                continue;
            int cover = coveredBy[r] >= 0 ? coveredBy[r] : FirstCover(rules, r);
            warnings.Add(cover >= 0
                ? $"{rules[r].Where} can never match: {rules[cover].Where} before it matches every packet it would"
                : $"{rules[r].Where} can never match: earlier rules together match every packet it would");
        }
        if (unreachable > 20)
            warnings.Add($"{unreachable - 20:N0} more rules can never match");
        return warnings;
    }

    private static int FirstCover(IReadOnlyList<PolicyRule> rules, int rule)
    {
        for (int i = 0; i < rule; i++)
            if (Covers(rules[i].Match, rules[rule].Match))
                return i;
        return -1;
    }

    // A file rule that one settings rule covers can never match: the settings' tree is walked first.
    private static void WarnCoveredBySettings(List<PolicyRule> settingsRules, IReadOnlyList<PolicyRule> fileRules, SettingsNode settings, IStageContext context)
    {
        if (settingsRules.Count == 0 || (long)settingsRules.Count * fileRules.Count > 50_000_000)
            return; // a pairwise check this large would cost more than the warning is worth
        int warned = 0;
        foreach (var rule in fileRules)
        {
            var cover = settingsRules.FirstOrDefault(s => Covers(s.Match, rule.Match));
            if (cover is null)
                continue;
            if (++warned <= 20)
                context.Warn(settings, $"{rule.Where} can never match: {cover.Where} in the settings matches every packet it would");
        }
        if (warned > 20)
            context.Warn(settings, $"{warned - 20:N0} more rules of the rules file can never match (settings rules cover them)");
    }

    private static bool Covers(RuleMatch a, RuleMatch b) =>
        a.Family == b.Family && a.ProtocolLow <= b.ProtocolLow && a.ProtocolHigh >= b.ProtocolHigh
        && a.SourceLength <= b.SourceLength && (b.Source & a.SourceMask) == a.Source
        && a.DestinationLength <= b.DestinationLength && (b.Destination & a.DestinationMask) == a.Destination
        && a.SourcePortLow <= b.SourcePortLow && a.SourcePortHigh >= b.SourcePortHigh
        && a.DestinationPortLow <= b.DestinationPortLow && a.DestinationPortHigh >= b.DestinationPortHigh
        && (!a.RequiresPorts || b.RequiresPorts);

    // For the first few rules, a packet built to match the rule; its expected verdict is what the first rule that
    // matches it does (an earlier rule may take it), computed in C# with the datapath's semantics.
    private static List<CanaryPacket> Canaries(List<PolicyRule> settingsRules, FlatTree first, IReadOnlyList<PolicyRule> fileRules, FlatTree second)
    {
        var canaries = new List<CanaryPacket>();
        var rules = settingsRules.Concat(fileRules.Take(CanaryCandidates)).ToList();
        // The first rule that matches, as the datapath finds it: the trees (tested against a linear reference), not a scan of every rule.
        int Match(PacketKey key) => first.Match(key) is int a and >= 0 ? a : second.Match(key) is int b and >= 0 ? settingsRules.Count + b : -1;
        for (int i = 0; i < rules.Count && i < CanaryCandidates && canaries.Count < MaxCanaries; i++)
        {
            var m = rules[i].Match;
            bool v6 = m.Family == IpFamily.IPv6;
            // IPv6 canaries are UDP (the frame builder has no other): a rule that cannot match UDP gets none.
            byte protocol = m.ProtocolLow <= 17 && m.ProtocolHigh >= 17 ? (byte)17 : v6 ? (byte)0 : m.ProtocolLow;
            if (v6 && protocol != 17)
                continue;
            bool ports = protocol is 6 or 17 or 132;
            if (m.RequiresPorts && !ports)
                continue;
            var source = m.SourceLength == 0 ? (v6 ? CanarySource6 : CanarySource) : m.Source;
            var destination = m.DestinationLength == 0 ? (v6 ? CanaryDestination6 : CanaryDestination) : m.Destination;
            ushort sport = m.RequiresPorts ? m.SourcePortLow : (ushort)40000;
            ushort dport = m.RequiresPorts ? m.DestinationPortLow : (ushort)9;
            var key = new PacketKey(m.Family, protocol, source, destination, ports, sport, dport);
            int decider = Match(key);
            if (decider < 0 || !Forwardable(key))
                continue;
            var d = decider < settingsRules.Count ? settingsRules[decider] : fileRules[decider - settingsRules.Count];
            if (d.Action == RuleAction.Next)
                continue; // what happens next is a later stage's business
            var (verdict, ifindex) = d.Action switch
            {
                RuleAction.Redirect when d.Ifindex == 0 => (CanaryVerdict.Pass, 0), // withdrawn: the kernel routes it
                RuleAction.Redirect => (CanaryVerdict.Redirect, d.Ifindex),
                RuleAction.Drop => (CanaryVerdict.Drop, 0),
                _ => (CanaryVerdict.Pass, 0),
            };
            var frame = v6
                ? CanaryFrames.Ipv6Udp(Ipv6Text.ToAddress(source), Ipv6Text.ToAddress(destination), sport, dport)
                : CanaryFrames.Ipv4(Ipv4Text.ToAddress((uint)source), Ipv4Text.ToAddress((uint)destination), protocol, sport, dport);
            canaries.Add(new CanaryPacket($"{rules[i].Where}", frame, verdict, ifindex));
        }
        return canaries;
    }

    // The redirect helpers give multicast, broadcast and scoped IPv6 destinations to the kernel: no redirect canary for them.
    private static bool Forwardable(PacketKey key) =>
        key.Family == IpFamily.IPv4
            ? (uint)key.Destination >> 28 != 0xE && (uint)key.Destination != uint.MaxValue
            : !Ipv6Text.WithinScoped(key.Destination, 128) && key.Destination != 0;

    /// <summary>The hit counters follow the rule positions into maps of another size; positions past the end go.</summary>
    public MapEntry? Migrate(MapSchema from, MapSchema to, MapEntry entry) =>
        Convert.ToUInt32(entry.Key["index"]) < to.MaxEntries ? entry : null;
}
