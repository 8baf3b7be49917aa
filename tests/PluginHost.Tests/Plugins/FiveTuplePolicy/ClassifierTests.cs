using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using PluginHost.Plugins.FiveTuplePolicy.Classifier;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Plugins.FiveTuplePolicy;

/// <summary>
/// The FiveTuplePolicy classifier in C#: the HyperSplit tree, walked as the BPF program will walk its flat layout,
/// agrees with the linear reference on ClassBench traces and on random IPv6 rule sets; the layout is the documented one.
/// </summary>
[Trait("Category", "Unit")]
public sealed class ClassifierTests(ITestOutputHelper output)
{
    private const uint Tcp = 6, Udp = 17;

    // ---- ClassBench ----

    [ClassBenchTheory]
    [InlineData("acl1-1k.rules", "acl1-1k.trace.gz", 957)]
    [InlineData("acl1-10k.rules", "acl1-10k.trace.gz", 9794)]
    [InlineData("acl1-100k.rules.gz", "acl1-100k.trace.gz", 99801)]
    public void ClassBenchTraceIsClassifiedToTheExpectedRuleAndAsTheLinearMatcherDoes(string rulesFile, string traceFile, int ruleCount)
    {
        var rules = ClassBenchFormat.ReadRules(ClassBenchData.PathOf(rulesFile));
        var trace = ClassBenchFormat.ReadTrace(ClassBenchData.PathOf(traceFile)).ToArray();
        Assert.Equal(ruleCount, rules.Count);
        Assert.Equal(100_000, trace.Length);

        var tree = TreeBuilder.Build(rules);
        var linear = new LinearMatcher(rules);
        var stats = tree.Stats;
        Assert.InRange(stats.MaxDepth, 1, TreeBuilder.MaxDepth);
        Assert.InRange(stats.MaxLeafRules, 1, TreeBuilder.LeafMax);

        int wrong = 0, differ = 0, maxNodes = 0, maxRules = 0;
        long nodes = 0, checkedRules = 0;
        var treeClock = new Stopwatch();
        var linearClock = new Stopwatch();
        var firstWrong = new List<string>();
        foreach (var entry in trace)
        {
            treeClock.Start();
            var lookup = tree.Classify(entry.Key);
            treeClock.Stop();
            linearClock.Start();
            int reference = linear.Match(entry.Key);
            linearClock.Stop();
            nodes += lookup.NodesVisited;
            checkedRules += lookup.RulesChecked;
            maxNodes = Math.Max(maxNodes, lookup.NodesVisited);
            maxRules = Math.Max(maxRules, lookup.RulesChecked);
            if (lookup.Rule != entry.ExpectedRule)
                wrong++;
            if (lookup.Rule != reference)
                differ++;
            if ((lookup.Rule != entry.ExpectedRule || lookup.Rule != reference) && firstWrong.Count < 5)
                firstWrong.Add($"{entry.Key}: tree {lookup.Rule}, trace {entry.ExpectedRule}, linear {reference}");
        }
        output.WriteLine($"{rulesFile}: {stats}");
        output.WriteLine($"  per lookup: nodes avg {nodes / (double)trace.Length:F2} max {maxNodes}, rules checked avg {checkedRules / (double)trace.Length:F2} max {maxRules}");
        output.WriteLine($"  {trace.Length} lookups: tree {treeClock.ElapsedMilliseconds} ms, linear {linearClock.ElapsedMilliseconds} ms");
        Assert.True(wrong == 0 && differ == 0, $"{wrong} differ from the trace, {differ} from the linear matcher: {string.Join("; ", firstWrong)}");
        Assert.InRange(maxNodes, 1, TreeBuilder.MaxDepth + 1);
        Assert.InRange(maxRules, 1, TreeBuilder.LeafMax);
    }

    /// <summary>
    /// The alternatives Classifier/README.md compares: every binth and split choice gives a correct tree within
    /// the limits; the printed rows are the README's figures.
    /// </summary>
    [ClassBenchTheory]
    [InlineData("acl1-1k.rules", "acl1-1k.trace.gz")]
    [InlineData("acl1-10k.rules", "acl1-10k.trace.gz")]
    [InlineData("acl1-100k.rules.gz", "acl1-100k.trace.gz")]
    public void EveryBinthAndSplitChoiceClassifiesTheTraceToTheExpectedRule(string rulesFile, string traceFile)
    {
        var rules = ClassBenchFormat.ReadRules(ClassBenchData.PathOf(rulesFile));
        var trace = ClassBenchFormat.ReadTrace(ClassBenchData.PathOf(traceFile)).ToArray();
        output.WriteLine($"{rulesFile}: choice | binth | build ms | nodes | leaves | slots | KiB | depth max/avg | nodes visited avg/max | rules checked avg/max");
        foreach (var choice in Enum.GetValues<SplitChoice>())
            foreach (int binth in new[] { 4, 8, 16 })
            {
                var tree = TreeBuilder.Build(rules, binth, choice);
                var s = tree.Stats;
                int wrong = 0, maxNodes = 0, maxRules = 0;
                long nodes = 0, checkedRules = 0;
                foreach (var entry in trace)
                {
                    var lookup = tree.Classify(entry.Key);
                    wrong += lookup.Rule == entry.ExpectedRule ? 0 : 1;
                    nodes += lookup.NodesVisited;
                    checkedRules += lookup.RulesChecked;
                    maxNodes = Math.Max(maxNodes, lookup.NodesVisited);
                    maxRules = Math.Max(maxRules, lookup.RulesChecked);
                }
                output.WriteLine($"| {choice} | {binth} | {s.BuildTime.TotalMilliseconds:F0} | {s.Nodes} | {s.Leaves} | {s.Slots} | {s.TotalBytes / 1024} | " +
                                 $"{s.MaxDepth} / {s.AverageDepth:F1} | {nodes / (double)trace.Length:F2} / {maxNodes} | {checkedRules / (double)trace.Length:F2} / {maxRules} |");
                Assert.True(wrong == 0, $"{choice}, binth {binth}: {wrong} headers classified to another rule than the trace's");
                Assert.InRange(s.MaxLeafRules, 1, binth);
            }
    }

    [ClassBenchFact]
    public void FlatLayoutOfTheClassBench10kTreeHoldsItsInvariants()
    {
        var rules = ClassBenchFormat.ReadRules(ClassBenchData.PathOf("acl1-10k.rules"));
        var tree = TreeBuilder.Build(rules);

        var nodes = tree.Nodes;
        var slots = tree.Slots;
        var reached = new bool[nodes.Length];
        var stack = new Stack<(uint Index, int Depth)>([(FlatTree.Ipv4Root, 0), (FlatTree.Ipv6Root, 0)]);
        while (stack.Count > 0)
        {
            var (index, depth) = stack.Pop();
            Assert.InRange(index, 0u, (uint)nodes.Length - 1);
            Assert.InRange(depth, 0, TreeBuilder.MaxDepth);
            reached[index] = true;
            var node = nodes[(int)index];
            Assert.Equal(0u, node.Pad);
            if (node.Dim == (uint)TreeDim.Leaf)
            {
                Assert.InRange(node.Right, 0u, (uint)TreeBuilder.LeafMax);
                Assert.InRange(node.Left + node.Right, 0u, (uint)slots.Length);
                for (uint i = 1; i < node.Right; i++)
                    Assert.True(slots[(int)(node.Left + i - 1)] < slots[(int)(node.Left + i)], "a leaf's rules are in priority order");
                continue;
            }
            Assert.InRange(node.Dim, (uint)TreeDim.Protocol, (uint)TreeDim.DestinationPort);
            if (node.Dim != (uint)TreeDim.Source && node.Dim != (uint)TreeDim.Destination)
                Assert.Equal(0ul, node.ThresholdHigh);
            stack.Push((node.Left, depth + 1));
            stack.Push((node.Right, depth + 1));
        }
        Assert.All(reached, Assert.True); // no node is unreachable
        foreach (uint rule in slots)
            Assert.InRange(rule, 0u, (uint)rules.Count - 1);
        Assert.Equal(nodes.Length * 32, tree.NodeBytes.Length);
        Assert.Equal(slots.Length * 4, tree.SlotBytes.Length);
        Assert.Equal(rules.Count * 80, tree.RuleBytes.Length);
        output.WriteLine(tree.Stats.ToString());
    }

    // ---- Random rule sets ----

    [Theory]
    [InlineData(1, 1500, 0.0)]
    [InlineData(2, 1000, 0.0)]
    [InlineData(3, 2000, 0.5)]
    public void RandomRuleSetsAreClassifiedAsTheLinearMatcherDoes(int seed, int ruleCount, double ipv4Share)
    {
        var random = new Random(seed);
        var generator = new RandomRules(random, ipv4Share);
        var rules = Enumerable.Range(0, ruleCount).Select(_ => generator.Rule()).ToList();
        var clock = Stopwatch.StartNew();
        var tree = TreeBuilder.Build(rules);
        var buildTime = clock.Elapsed;
        var linear = new LinearMatcher(rules);

        const int packets = 120_000;
        int differ = 0, matched = 0, portless = 0, portlessMatched = 0, maxNodes = 0, maxRules = 0;
        var hit = new HashSet<int>();
        var firstDiffer = new List<string>();
        for (int i = 0; i < packets; i++)
        {
            var key = i % 3 == 0 ? generator.Packet() : generator.PacketNear(rules[random.Next(rules.Count)]);
            var lookup = tree.Classify(key);
            int reference = linear.Match(key);
            maxNodes = Math.Max(maxNodes, lookup.NodesVisited);
            maxRules = Math.Max(maxRules, lookup.RulesChecked);
            if (reference >= 0)
            {
                matched++;
                hit.Add(reference);
            }
            if (!key.HasPorts)
            {
                portless++;
                portlessMatched += reference >= 0 ? 1 : 0;
            }
            if (lookup.Rule != reference && ++differ <= 5)
                firstDiffer.Add($"{key}: tree {lookup.Rule}, linear {reference} ({(reference >= 0 ? rules[reference] : "none")})");
        }
        output.WriteLine($"seed {seed}: {tree.Stats with { BuildTime = buildTime }}");
        output.WriteLine($"  {packets} packets: {matched} matched a rule ({hit.Count} distinct rules), {portless} without ports ({portlessMatched} matched), " +
                         $"nodes max {maxNodes}, rules checked max {maxRules}");
        Assert.True(differ == 0, $"{differ} of {packets} packets differ: {string.Join("; ", firstDiffer)}");
        // Not vacuous: most packets hit a rule, many different rules are hit, and portless packets are many and reach rules too.
        Assert.InRange(matched, packets / 2, packets);
        Assert.InRange(hit.Count, ruleCount / 3, ruleCount);
        Assert.InRange(portless, packets / 10, packets / 2);
        Assert.InRange(portlessMatched, portless / 4, portless);
        Assert.InRange(tree.Stats.MaxLeafRules, 1, TreeBuilder.LeafMax);
    }

    // ---- Small cases ----

    [Fact]
    public void AnEarlierRuleShadowsALaterOneItCovers()
    {
        var rules = Parse(
            "0 any 10.0.0.0/8 0.0.0.0/0 0-65535 0-65535",
            "1 6 10.1.0.0/16 0.0.0.0/0 0-65535 80-80",
            "2 6 192.0.2.0/24 0.0.0.0/0 0-65535 80-80",
            "3 any 192.0.0.0/8 0.0.0.0/0 0-65535 0-65535");

        foreach (var tree in new[] { TreeBuilder.Build(rules), TreeBuilder.Build(rules, binth: 1) })
        {
            Assert.Equal(0, tree.Match(V4(Tcp, "10.1.2.3", "198.51.100.1", 1234, 80)));
            Assert.Equal(2, tree.Match(V4(Tcp, "192.0.2.7", "198.51.100.1", 1234, 80)));
            Assert.Equal(3, tree.Match(V4(Tcp, "192.0.2.7", "198.51.100.1", 1234, 81)));
            Assert.Equal(3, tree.Match(V4(Udp, "192.0.3.7", "198.51.100.1", 1234, 80)));
            Assert.Equal(-1, tree.Match(V4(Tcp, "11.0.0.1", "198.51.100.1", 1234, 80)));
        }
        // Split down to single rules, the box around 10.1.0.0/16 is covered by rule 0, which cuts rule 1 off: no leaf lists it.
        Assert.DoesNotContain(1u, TreeBuilder.Build(rules, binth: 1).Slots.ToArray());
        Assert.Contains(3u, TreeBuilder.Build(rules, binth: 1).Slots.ToArray());
    }

    [Fact]
    public void APacketWithoutPortsSkipsPortRulesAndFallsThroughToALaterRule()
    {
        var rules = Parse(
            "0 any 0.0.0.0/0 0.0.0.0/0 0-65534 0-65535", // needs ports, and covers almost every packet that has them
            "1 17 0.0.0.0/0 0.0.0.0/0 0-65535 53-53",
            "2 17 0.0.0.0/0 0.0.0.0/0 0-65535 0-65535");
        var fragment = new PacketKey(IpFamily.IPv4, 17, 0xC0000201, 0xC0000202, hasPorts: false, 5353, 53);
        Assert.Equal((0, 0), ((int)fragment.SourcePort, (int)fragment.DestinationPort));

        // binth 1 splits until rule 0 covers whole boxes: rule 1 is dropped there, rule 2 must not be.
        foreach (var tree in new[] { TreeBuilder.Build(rules), TreeBuilder.Build(rules, binth: 1) })
        {
            Assert.Equal(0, tree.Match(V4(Udp, "192.0.2.1", "192.0.2.2", 5353, 53)));
            Assert.Equal(1, tree.Match(V4(Udp, "192.0.2.1", "192.0.2.2", 65535, 53)));
            Assert.Equal(2, tree.Match(V4(Udp, "192.0.2.1", "192.0.2.2", 65535, 54)));
            // A non-first fragment of the same flow: no ports, so neither port rule; the portless rule 2 still matches.
            Assert.Equal(2, tree.Match(fragment));
            Assert.Equal(-1, tree.Match(new PacketKey(IpFamily.IPv4, 1, 0xC0000201, 0xC0000202, hasPorts: false)));
        }
    }

    [Fact]
    public void AnEmptyRuleSetMatchesNothingInEitherFamily()
    {
        var tree = TreeBuilder.Build([]);

        Assert.Equal(2, tree.Nodes.Length);
        Assert.Equal(0, tree.Slots.Length);
        Assert.Equal(0, tree.Rules.Length);
        Assert.Equal(TreeNode.Leaf(0, 0), tree.Nodes[0]);
        Assert.Equal(TreeNode.Leaf(0, 0), tree.Nodes[1]);
        Assert.Equal(new TreeLookup(-1, 1, 0), tree.Classify(V4(Tcp, "192.0.2.1", "192.0.2.2", 1, 2)));
        Assert.Equal(-1, tree.Match(V6(Tcp, "2001:db8::1", "2001:db8::2", 1, 2)));
        // BPF arrays need one entry at least: the empty slot and rule arrays still count one each.
        Assert.Equal(2 * 32 + 8 + 80, tree.Stats.TotalBytes);
    }

    [Fact]
    public void AFamilyWithoutRulesHasAnEmptyRootAndTheOtherFamilyStillMatches()
    {
        var v4Only = Build("0 6 192.0.2.0/24 0.0.0.0/0 0-65535 443-443", "1 any 0.0.0.0/0 0.0.0.0/0 0-65535 0-65535");
        var v6Only = Build("0 6 2001:db8::/32 ::/0 0-65535 443-443", "1 any ::/0 ::/0 0-65535 0-65535");

        Assert.Equal(0, v4Only.Match(V4(Tcp, "192.0.2.9", "198.51.100.1", 999, 443)));
        Assert.Equal(1, v4Only.Match(V4(Udp, "192.0.2.9", "198.51.100.1", 999, 443)));
        Assert.Equal(-1, v4Only.Match(V6(Tcp, "2001:db8::9", "2001:db8::1", 999, 443)));
        Assert.Equal(TreeNode.Leaf(0, 0), v4Only.Nodes[(int)FlatTree.Ipv6Root]);

        Assert.Equal(0, v6Only.Match(V6(Tcp, "2001:db8::9", "::1", 999, 443)));
        Assert.Equal(1, v6Only.Match(V6(Tcp, "2001:db9::9", "::1", 999, 443)));
        Assert.Equal(-1, v6Only.Match(V4(Tcp, "192.0.2.9", "198.51.100.1", 999, 443)));
        Assert.Equal(0u, v6Only.Nodes[(int)FlatTree.Ipv4Root].Right);
    }

    [Fact]
    public void TheSameRulesInBothFamiliesStayApart()
    {
        // ::/0 and 0.0.0.0/0 are different rules: an IPv6 packet whose low 32 bits equal an IPv4 rule's address does not match it.
        var tree = Build(
            "0 6 192.0.2.0/24 0.0.0.0/0 0-65535 0-65535",
            "1 6 ::c000:200/120 ::/0 0-65535 0-65535",
            "2 any ::/0 ::/0 0-65535 0-65535");

        Assert.Equal(0, tree.Match(V4(Tcp, "192.0.2.5", "192.0.2.6", 1, 1)));
        Assert.Equal(1, tree.Match(V6(Tcp, "::c000:205", "::1", 1, 1)));
        Assert.Equal(2, tree.Match(V6(Udp, "::c000:205", "::1", 1, 1)));
        Assert.Equal(-1, tree.Match(V4(Udp, "192.0.2.5", "192.0.2.6", 1, 1)));
    }

    [Fact]
    public void ExactCopiesOfEarlierRulesAreLeftOutOfTheTree()
    {
        var tree = Build(
            "0 6 192.0.2.0/24 0.0.0.0/0 0-65535 80-80",
            "1 6 192.0.2.0/24 0.0.0.0/0 0-65535 80-80",
            "2 6 192.0.2.0/24 0.0.0.0/0 0-65535 81-81");

        Assert.Equal(1, tree.Stats.DuplicateRules);
        Assert.Equal(3, tree.Rules.Length); // rule records stay indexed by position
        Assert.DoesNotContain(1u, tree.Slots.ToArray());
        Assert.Equal(0, tree.Match(V4(Tcp, "192.0.2.1", "192.0.2.2", 1, 80)));
        Assert.Equal(2, tree.Match(V4(Tcp, "192.0.2.1", "192.0.2.2", 1, 81)));
    }

    [Fact]
    public void RulesThatNeedMoreSplitsThanTheDepthLimitAreRefusedNamingTheLimits()
    {
        var rules = Enumerable.Range(0, 40)
            .Select(i => new RuleMatch(IpFamily.IPv4, 6, 6, (UInt128)(0xC0000200u + (uint)i), 32, 0, 0, 0, 65535, 80, 80))
            .ToList();

        var error = Assert.Throws<ClassifierLimitException>(() => TreeBuilder.Build(rules, depthLimit: 1));
        Assert.Contains("MaxDepth", error.Message);
        Assert.Contains($"more than {TreeBuilder.LeafMax} (LeafMax)", error.Message);
        Assert.Equal(40, TreeBuilder.Build(rules).Stats.Rules); // the real limit is far away
        Assert.Throws<ArgumentOutOfRangeException>(() => TreeBuilder.Build(rules, binth: TreeBuilder.LeafMax + 1));
    }

    [Fact]
    public void ARuleWithAProtocolRangeMatchesEveryProtocolInIt()
    {
        var rules = new List<RuleMatch>
        {
            new(IpFamily.IPv6, 6, 17, 0, 0, 0, 0, 0, 65535, 0, 65535),
            RuleMatch.Any(IpFamily.IPv6),
        };
        var tree = TreeBuilder.Build(rules, binth: 1);

        foreach (byte protocol in new byte[] { 0, 5, 6, 12, 17, 18, 255 })
        {
            var key = new PacketKey(IpFamily.IPv6, protocol, 1, 2, hasPorts: false);
            Assert.Equal(protocol is >= 6 and <= 17 ? 0 : 1, tree.Match(key));
        }
    }

    // ---- Layout ----

    [Fact]
    public void NodeAndRuleRecordsHaveTheDocumentedBpfLayout()
    {
        Assert.Equal(32, Marshal.SizeOf<TreeNode>());
        Assert.Equal(
            new[] { ("ThresholdHigh", 0), ("ThresholdLow", 8), ("Left", 16), ("Right", 20), ("Dim", 24), ("Pad", 28) },
            Offsets<TreeNode>());
        Assert.Equal(80, Marshal.SizeOf<TreeRule>());
        Assert.Equal(
            new[]
            {
                ("SourceHigh", 0), ("SourceLow", 8), ("SourceMaskHigh", 16), ("SourceMaskLow", 24),
                ("DestinationHigh", 32), ("DestinationLow", 40), ("DestinationMaskHigh", 48), ("DestinationMaskLow", 56),
                ("SourcePortLow", 64), ("SourcePortHigh", 66), ("DestinationPortLow", 68), ("DestinationPortHigh", 70),
                ("ProtocolLow", 72), ("ProtocolHigh", 73), ("RequiresPorts", 74), ("Pad0", 75), ("Pad1", 76),
            },
            Offsets<TreeRule>());

        var tree = Build("0 6 2001:db8:1::/48 ::/0 1024-65535 443-443");
        var rule = tree.RuleBytes;
        Assert.Equal(0x20010db800010000ul, BitConverter.ToUInt64(rule[..8]));          // src_hi
        Assert.Equal(0ul, BitConverter.ToUInt64(rule[8..16]));                        // src_lo
        Assert.Equal(0xffffffffffff0000ul, BitConverter.ToUInt64(rule[16..24]));      // src_mask_hi (/48)
        Assert.Equal((1024, 65535, 443, 443), (BitConverter.ToUInt16(rule[64..]), BitConverter.ToUInt16(rule[66..]),
            BitConverter.ToUInt16(rule[68..]), BitConverter.ToUInt16(rule[70..])));
        Assert.Equal(new byte[] { 6, 6, 1 }, rule[72..75].ToArray());
        var root = tree.NodeBytes.Slice((int)FlatTree.Ipv6Root * 32, 32);
        Assert.Equal((uint)TreeDim.Leaf, BitConverter.ToUInt32(root[24..]));
        Assert.Equal(1u, BitConverter.ToUInt32(root[20..])); // one slot
        Assert.Equal(0u, tree.Slots[(int)BitConverter.ToUInt32(root[16..])]);
    }

    [Fact]
    public void AnIpv4RuleUsesOnlyTheLowHalves()
    {
        var record = TreeRule.From(ClassBenchFormat.ParseRules(new StringReader("0 17 10.1.0.0/16 0.0.0.0/0 0-65535 0-65535"))[0]);

        Assert.Equal((0ul, 0x0A010000ul, 0ul, 0xFFFF0000ul), (record.SourceHigh, record.SourceLow, record.SourceMaskHigh, record.SourceMaskLow));
        Assert.Equal((0ul, 0ul, 0ul, 0ul), (record.DestinationHigh, record.DestinationLow, record.DestinationMaskHigh, record.DestinationMaskLow));
        Assert.Equal((17, 17, 0), (record.ProtocolLow, record.ProtocolHigh, record.RequiresPorts));
    }

    // ---- Rules files ----

    [Fact]
    public void EveryBadRulesLineIsReportedWithItsNumberAndValue()
    {
        const string text = """
            0 6 10.0.0.0/8 0.0.0.0/0 0-65535 80-80
            1 6 10.0.0.256/32 0.0.0.0/0 0-65535 80-80
            # a comment, then a blank line

            2 tcp 10.0.0.0/8 0.0.0.0/0 0-65535 80-80
            3 6 10.0.0.1/8 0.0.0.0/0 0-65535 80-80
            4 6 10.0.0.0/8 0.0.0.0/0 0-65536 90-80
            5 6 10.0.0.0/8 2001:db8::/32 0-65535 80-80
            6 6 10.0.0.0/8 0.0.0.0/0 0-65535
            9 6 10.0.0.0/8 0.0.0.0/0 0-65535 80-80
            8 6 2001:db8::/129 ::/0 0-65535 80-80
            9 6 2001:db8::/32 ::/0 0-65535 443-443
            10 17 010.0.0.0/8 0.0.0.0/0 0-65535 0-65535
            """;

        var error = Assert.Throws<RulesFormatException>(() => ClassBenchFormat.ParseRules(new StringReader(text), "test.rules"));

        Assert.Equal(
            new[]
            {
                "line 2: invalid source prefix '10.0.0.256/32' (expected ADDRESS/LENGTH, IPv4 or IPv6)",
                "line 5: invalid protocol 'tcp' (expected 0-255 or any)",
                "line 6: invalid source prefix '10.0.0.1/8': host bits are set (did you mean 10.0.0.0/8?)",
                "line 7: invalid source port range '0-65536' (expected LOW-HIGH within 0-65535, LOW <= HIGH); " +
                "invalid destination port range '90-80' (expected LOW-HIGH within 0-65535, LOW <= HIGH)",
                "line 8: source '10.0.0.0/8' is IPv4 but destination '2001:db8::/32' is IPv6 (a rule is one family)",
                "line 9: expected 6 fields (PRIORITY PROTO SRC/LEN DST/LEN SPORT_LO-SPORT_HI DPORT_LO-DPORT_HI), found 5",
                "line 10: priority '9' is not the rule's position 7 (rules are numbered from 0 in file order)",
                "line 11: invalid source prefix '2001:db8::/129' (expected ADDRESS/LENGTH, IPv4 or IPv6)",
                "line 13: invalid source prefix '010.0.0.0/8' (expected ADDRESS/LENGTH, IPv4 or IPv6)",
            },
            error.Errors);
        Assert.StartsWith("parse test.rules: 9 bad lines:", error.Message);
    }

    [Fact]
    public void IPv6RulesAndClassBenchRulesParseToTheirFields()
    {
        var rules = ClassBenchFormat.ParseRules(new StringReader("""
            0 17 180.196.2.16/29 209.245.9.216/29 24032-24032 873-873
            1 any 2001:db8:a::/48 ::/0 0-65535 0-65535
            2 58 fe80::1/128 2001:db8::/32 0-65535 1000-2000
            """));

        Assert.Equal(
            new RuleMatch(IpFamily.IPv4, 17, 17, 0xB4C40210, 29, 0xD1F509D8, 29, 24032, 24032, 873, 873), rules[0]);
        Assert.True(rules[0].RequiresPorts);
        Assert.Equal((IpFamily.IPv6, (byte)0, (byte)255, 48, false), (rules[1].Family, rules[1].ProtocolLow, rules[1].ProtocolHigh, rules[1].SourceLength, rules[1].RequiresPorts));
        Assert.Equal(((UInt128)0xfe80 << 112) | 1, rules[2].Source);
        Assert.Equal("58 fe80::1/128 2001:db8::/32 0-65535 1000-2000", rules[2].ToString());
    }

    [Fact]
    public void RulesAndKeysRefuseValuesOutsideTheirFamily()
    {
        var hostBits = Assert.Throws<ArgumentException>(() => new RuleMatch(IpFamily.IPv4, 6, 6, 0xC0000201, 24, 0, 0, 0, 65535, 0, 65535));
        Assert.Equal("create rule: source prefix 192.0.2.1/24 has host bits set (or bits beyond the family's width)", hostBits.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RuleMatch(IpFamily.IPv4, 6, 6, 0, 33, 0, 0, 0, 65535, 0, 65535));
        Assert.Throws<ArgumentException>(() => new RuleMatch(IpFamily.IPv6, 17, 6, 0, 0, 0, 0, 0, 65535, 0, 65535));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PacketKey(IpFamily.IPv4, 6, (UInt128)uint.MaxValue + 1, 0, true, 1, 1));
        Assert.Equal(UInt128.MaxValue, RuleMatch.Mask(IpFamily.IPv6, 128));
        Assert.Equal((UInt128)uint.MaxValue, RuleMatch.Mask(IpFamily.IPv4, 32));
    }

    // ---- Helpers ----

    private static FlatTree Build(params string[] lines) => TreeBuilder.Build(Parse(lines));

    private static IReadOnlyList<RuleMatch> Parse(params string[] lines) => ClassBenchFormat.ParseRules(new StringReader(string.Join('\n', lines)));

    private static PacketKey V4(uint protocol, string source, string destination, ushort sport, ushort dport)
    {
        Assert.True(AddressText.TryParse(source, out _, out var s));
        Assert.True(AddressText.TryParse(destination, out _, out var d));
        return new PacketKey(IpFamily.IPv4, (byte)protocol, s, d, hasPorts: true, sport, dport);
    }

    private static PacketKey V6(uint protocol, string source, string destination, ushort sport, ushort dport)
    {
        Assert.True(AddressText.TryParse(source, out _, out var s));
        Assert.True(AddressText.TryParse(destination, out _, out var d));
        return new PacketKey(IpFamily.IPv6, (byte)protocol, s, d, hasPorts: true, sport, dport);
    }

    private static (string, int)[] Offsets<T>() =>
        typeof(T).GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public)
            .Select(f => (f.Name, (int)Marshal.OffsetOf<T>(f.Name)))
            .OrderBy(f => f.Item2)
            .ToArray();

    /// <summary>
    /// Rules around a few base addresses so they overlap and nest: mixed prefix lengths, any-protocol, exact ports,
    /// ranges; packets at rule corners (first and last address, range ends) or nearby, some without ports.
    /// </summary>
    internal sealed class RandomRules(Random random, double ipv4Share)
    {
        private static readonly byte[] Protocols = [6, 17, 132, 6, 17, 1, 58]; // with ports first
        private static readonly ushort[] HotPorts = [0, 22, 53, 80, 443, 1023, 1024, 8080, 65535];
        private readonly UInt128[] _bases6 = Enumerable.Range(0, 6).Select(_ => Random128(random)).ToArray();
        private readonly UInt128[] _bases4 = Enumerable.Range(0, 6).Select(_ => (UInt128)(uint)random.NextInt64(0, 1L << 32)).ToArray();

        public RuleMatch Rule()
        {
            var family = random.NextDouble() < ipv4Share ? IpFamily.IPv4 : IpFamily.IPv6;
            byte protocol = Protocols[random.Next(Protocols.Length)];
            (byte protoLow, byte protoHigh) = random.Next(10) switch
            {
                < 3 => ((byte)0, (byte)255),
                9 => ((byte)6, (byte)17),
                _ => (protocol, protocol),
            };
            var (src, srcLength) = Prefix(family);
            var (dst, dstLength) = Prefix(family);
            var (sLow, sHigh) = Ports(wildcardShare: 0.6);
            var (dLow, dHigh) = Ports(wildcardShare: 0.3);
            return new RuleMatch(family, protoLow, protoHigh, src, srcLength, dst, dstLength, sLow, sHigh, dLow, dHigh);
        }

        /// <summary>A packet near the base addresses, not aimed at any rule.</summary>
        public PacketKey Packet()
        {
            var family = random.NextDouble() < ipv4Share ? IpFamily.IPv4 : IpFamily.IPv6;
            var bases = family == IpFamily.IPv4 ? _bases4 : _bases6;
            UInt128 src = Perturb(family, bases[random.Next(bases.Length)]), dst = Perturb(family, bases[random.Next(bases.Length)]);
            byte protocol = random.Next(8) == 0 ? (byte)random.Next(256) : Protocols[random.Next(Protocols.Length)];
            return Key(family, protocol, src, dst, HotPorts[random.Next(HotPorts.Length)], (ushort)random.Next(65536));
        }

        /// <summary>A packet at a corner of <paramref name="rule"/> (each field at an end of its range, or just past it).</summary>
        public PacketKey PacketNear(RuleMatch rule)
        {
            var family = rule.Family;
            UInt128 src = Corner(family, rule.Source, rule.SourceLast);
            UInt128 dst = Corner(family, rule.Destination, rule.DestinationLast);
            // Mostly inside the rule's protocols, and one with ports under an any-protocol rule: portless packets stay a minority.
            byte protocol = random.Next(5) == 0 ? (byte)Corner(IpFamily.IPv4, rule.ProtocolLow, rule.ProtocolHigh, max: 255)
                : rule.ProtocolLow == rule.ProtocolHigh ? rule.ProtocolLow
                : Math.Clamp(Protocols[random.Next(3)], rule.ProtocolLow, rule.ProtocolHigh);
            ushort sport = (ushort)Corner(IpFamily.IPv4, rule.SourcePortLow, rule.SourcePortHigh, max: 65535);
            ushort dport = (ushort)Corner(IpFamily.IPv4, rule.DestinationPortLow, rule.DestinationPortHigh, max: 65535);
            return Key(family, protocol, src, dst, sport, dport);
        }

        private PacketKey Key(IpFamily family, byte protocol, UInt128 src, UInt128 dst, ushort sport, ushort dport)
        {
            // Without ports: ICMP and ICMPv6 always, other protocols sometimes (a non-first fragment).
            bool hasPorts = protocol is 6 or 17 or 132 && random.Next(8) != 0;
            return new PacketKey(family, protocol, src, dst, hasPorts, sport, dport);
        }

        private (UInt128, int) Prefix(IpFamily family)
        {
            int width = RuleMatch.Width(family);
            // Few wildcards: a rule matching (nearly) everything early on would hide all the rules after it.
            int length = random.Next(40) switch
            {
                0 => 0,
                < 5 => width,
                _ => random.Next(width / 8, width + 1),
            };
            var bases = family == IpFamily.IPv4 ? _bases4 : _bases6;
            var address = random.Next(5) == 0 ? Perturb(family, bases[random.Next(bases.Length)]) : bases[random.Next(bases.Length)];
            return (address & RuleMatch.Mask(family, length), length);
        }

        private (ushort, ushort) Ports(double wildcardShare)
        {
            double roll = random.NextDouble();
            if (roll < wildcardShare)
                return (0, 65535);
            if (roll < wildcardShare + (1 - wildcardShare) / 2)
            {
                ushort port = HotPorts[random.Next(HotPorts.Length)];
                return (port, port);
            }
            ushort a = random.Next(2) == 0 ? HotPorts[random.Next(HotPorts.Length)] : (ushort)random.Next(65536);
            ushort b = random.Next(2) == 0 ? HotPorts[random.Next(HotPorts.Length)] : (ushort)random.Next(65536);
            return (Math.Min(a, b), Math.Max(a, b));
        }

        private UInt128 Corner(IpFamily family, UInt128 low, UInt128 high, UInt128? max = null)
        {
            UInt128 top = max ?? RuleMatch.AllOnes(family);
            return random.Next(6) switch
            {
                0 => low,
                1 => high,
                2 => low == 0 ? low : low - 1,
                3 => high == top ? high : high + 1,
                4 => low + (high - low) / 2,
                _ => high - low == UInt128.MaxValue ? Random128(random) : low + Random128(random) % (high - low + 1),
            };
        }

        /// <summary>The address with some of its low bits replaced: near it, under a long enough prefix.</summary>
        private UInt128 Perturb(IpFamily family, UInt128 address)
        {
            int bits = random.Next(RuleMatch.Width(family) + 1);
            UInt128 low = bits == 0 ? 0 : bits >= 128 ? UInt128.MaxValue : (UInt128.One << bits) - 1;
            return (address & ~low | Random128(random) & low) & RuleMatch.AllOnes(family);
        }

        private static UInt128 Random128(Random random)
        {
            Span<byte> bytes = stackalloc byte[16];
            random.NextBytes(bytes);
            return BinaryPrimitives.ReadUInt128LittleEndian(bytes);
        }
    }
}

/// <summary>Where the ClassBench data lives: $PLUGINHOST_CLASSBENCH, or the shared data folder of the lab machines.</summary>
internal static class ClassBenchData
{
    public static string Directory { get; } = Environment.GetEnvironmentVariable("PLUGINHOST_CLASSBENCH") ?? "/work/shared/data/classbench";

    public static string PathOf(string file) => Path.Combine(Directory, file);

    /// <summary>Why a ClassBench test cannot run here, or null. Under CI=true it always runs, so missing data fails it.</summary>
    public static string? SkipReason =>
        Environment.GetEnvironmentVariable("CI") == "true" || File.Exists(PathOf("acl1-1k.rules"))
            ? null
            : $"needs the ClassBench data in {Directory} (set PLUGINHOST_CLASSBENCH); runs in CI";
}

public sealed class ClassBenchFactAttribute : FactAttribute
{
    public ClassBenchFactAttribute() => Skip = ClassBenchData.SkipReason;
}

public sealed class ClassBenchTheoryAttribute : TheoryAttribute
{
    public ClassBenchTheoryAttribute() => Skip = ClassBenchData.SkipReason;
}
