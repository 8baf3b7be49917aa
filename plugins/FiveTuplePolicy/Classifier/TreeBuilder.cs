using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace PluginHost.Plugins.FiveTuplePolicy.Classifier;

/// <summary>How a node picks the dimension to split (the point is always the weighted segment median).</summary>
internal enum SplitChoice
{
    /// <summary>HyperSplit's own: the dimension whose segments hold the fewest rules on average (rules most spread out).</summary>
    FewestRulesPerSegment,

    /// <summary>The dimension whose split copies the fewest rules into both children (smallest left + right).</summary>
    FewestRuleCopies,

    /// <summary>The dimension whose larger child is smallest.</summary>
    SmallestLargerChild,
}

/// <summary>Thrown when a rule set needs a tree beyond the limits the BPF walk is bounded by.</summary>
internal sealed class ClassifierLimitException(string message) : Exception(message);

/// <summary>
/// Builds a HyperSplit tree (Qi et al., INFOCOM 2009) per address family and lays both out as a <see cref="FlatTree"/>.
/// A node covers a box (one range per dimension); it splits the box in two at one point of one dimension, chosen
/// so that the rules (clipped to the box) are balanced between the halves: the weighted median of the elementary
/// segments the rules' endpoints cut the dimension into, each weighted by the rules overlapping it. A node
/// becomes a leaf when it holds at most <c>binth</c> rules.
/// <para>Every node first drops the rules that can never match first inside its box: everything after the first
/// rule that covers the whole box and needs no ports, and after the first covering rule that needs ports, every
/// later rule that needs ports too (a packet they match has ports, so that earlier rule matches it).</para>
/// <para>Why it terminates: a split point is a clipped rule endpoint strictly inside the box, so each child's box
/// is smaller and holds strictly fewer such endpoints in that dimension; a box with none in any dimension is
/// covered by all its rules, which the drop above cuts to at most two (a port rule and the next portless one).
/// The recursion also stops at <see cref="MaxDepth"/>, where a leaf over <see cref="LeafMax"/> rules is refused
/// rather than truncated.</para>
/// </summary>
internal sealed class TreeBuilder
{
    /// <summary>Inner nodes on any path: the bound of the BPF walk's node loop (it reads at most MaxDepth + 1 nodes).</summary>
    public const int MaxDepth = 64;

    /// <summary>Rules in any leaf: the bound of the BPF walk's rule loop.</summary>
    public const int LeafMax = 16;

    /// <summary>A node with at most this many rules becomes a leaf (measured: see Classifier/README.md).</summary>
    public const int DefaultBinth = 8;

    private const int Dims = 5;
    private const int Lists = 1 + 2 * Dims; // by priority, then per dimension by low end and by high end

    private readonly int _binth;
    private readonly int _depthLimit;
    private readonly SplitChoice _choice;
    private readonly List<TreeNode> _nodes = [default, default]; // the two roots, filled in by BuildFamily
    private readonly List<uint> _slots = [];
    private readonly Dictionary<LeafKey, uint> _leaves;

    // One family at a time: the rules' ranges per dimension, by local index (= priority order).
    private UInt128[][] _low = [];
    private UInt128[][] _high = [];
    private bool[] _requiresPorts = [];
    private int[] _global = [];
    private IpFamily _family;

    // Scratch, sized for the family: marks and sides per rule, segments per sweep.
    private int[] _mark = [];
    private int _markStamp;
    private byte[] _side = [];
    private UInt128[] _segmentEnd = [];
    private int[] _segmentWeight = [];
    private int[] _segmentLeft = [];
    private int[] _segmentRight = [];

    // Shape, over every path to a leaf.
    private int _leafPaths;
    private long _depthSum;
    private int _maxDepth;
    private int _maxLeaf;

    private TreeBuilder(int binth, SplitChoice choice, int depthLimit)
    {
        _binth = binth;
        _depthLimit = depthLimit;
        _choice = choice;
        _leaves = new Dictionary<LeafKey, uint>(new LeafComparer(_slots));
    }

    /// <summary>
    /// The tree for <paramref name="rules"/> (index = priority, the first match wins), IPv4 and IPv6 rules in their own trees.
    /// Throws <see cref="ClassifierLimitException"/> if a path would need more than <see cref="MaxDepth"/> splits and a
    /// leaf more than <see cref="LeafMax"/> rules.
    /// </summary>
    /// <param name="depthLimit">Below <see cref="MaxDepth"/> only to test the limit.</param>
    public static FlatTree Build(IReadOnlyList<RuleMatch> rules, int binth = DefaultBinth,
        SplitChoice choice = SplitChoice.FewestRulesPerSegment, int depthLimit = MaxDepth)
    {
        if (binth < 1 || binth > LeafMax)
            throw new ArgumentOutOfRangeException(nameof(binth), binth, $"build classifier tree: binth must be within 1-{LeafMax} (LeafMax)");
        if (depthLimit < 0 || depthLimit > MaxDepth)
            throw new ArgumentOutOfRangeException(nameof(depthLimit), depthLimit, $"build classifier tree: depth limit must be within 0-{MaxDepth} (MaxDepth)");
        var clock = Stopwatch.StartNew();
        var builder = new TreeBuilder(binth, choice, depthLimit);
        int duplicates = builder.BuildFamily(rules, IpFamily.IPv4, FlatTree.Ipv4Root)
                         + builder.BuildFamily(rules, IpFamily.IPv6, FlatTree.Ipv6Root);
        var records = new TreeRule[rules.Count];
        for (int i = 0; i < records.Length; i++)
            records[i] = TreeRule.From(rules[i]);
        var nodes = builder._nodes.ToArray();
        var slots = builder._slots.ToArray();
        clock.Stop();

        int leaves = 0, empty = 0;
        foreach (var node in nodes)
            if (node.Dim == (uint)TreeDim.Leaf)
            {
                leaves++;
                empty += node.Right == 0 ? 1 : 0;
            }
        var stats = new TreeStats(rules.Count, duplicates, nodes.Length, leaves, empty, slots.Length, builder._maxDepth,
            builder._leafPaths == 0 ? 0 : (double)builder._depthSum / builder._leafPaths, builder._maxLeaf,
            MapBytes(nodes.Length, Unsafe.SizeOf<TreeNode>()), MapBytes(slots.Length, sizeof(uint)),
            MapBytes(records.Length, Unsafe.SizeOf<TreeRule>()), clock.Elapsed);
        return new FlatTree(nodes, slots, records, stats);
    }

    /// <summary>An array map's value memory: at least one entry (max_entries 0 is refused), each rounded up to 8 bytes.</summary>
    private static long MapBytes(int entries, int valueSize) => (long)Math.Max(entries, 1) * ((valueSize + 7) & ~7);

    /// <returns>How many rules were dropped as exact copies of an earlier one.</returns>
    private int BuildFamily(IReadOnlyList<RuleMatch> rules, IpFamily family, uint root)
    {
        _family = family;
        var seen = new HashSet<RuleMatch>(rules.Count);
        var global = new List<int>();
        int duplicates = 0;
        for (int i = 0; i < rules.Count; i++)
        {
            if (rules[i].Family != family)
                continue;
            // An exact copy of an earlier rule never matches first (ClassBench has some: it drops the TCP flags).
            if (seen.Add(rules[i]))
                global.Add(i);
            else
                duplicates++;
        }
        int n = global.Count;
        _global = [.. global];
        _low = new UInt128[Dims][];
        _high = new UInt128[Dims][];
        for (int d = 0; d < Dims; d++)
        {
            _low[d] = new UInt128[n];
            _high[d] = new UInt128[n];
        }
        _requiresPorts = new bool[n];
        for (int i = 0; i < n; i++)
        {
            var rule = rules[_global[i]];
            _low[0][i] = rule.ProtocolLow;
            _high[0][i] = rule.ProtocolHigh;
            _low[1][i] = rule.Source;
            _high[1][i] = rule.SourceLast;
            _low[2][i] = rule.Destination;
            _high[2][i] = rule.DestinationLast;
            _low[3][i] = rule.SourcePortLow;
            _high[3][i] = rule.SourcePortHigh;
            _low[4][i] = rule.DestinationPortLow;
            _high[4][i] = rule.DestinationPortHigh;
            _requiresPorts[i] = rule.RequiresPorts;
        }
        _mark = new int[n];
        _markStamp = 0;
        _side = new byte[n];
        _segmentEnd = new UInt128[2 * n + 2];
        _segmentWeight = new int[2 * n + 2];
        _segmentLeft = new int[2 * n + 2];
        _segmentRight = new int[2 * n + 2];

        var box = new Box();
        UInt128 addressMax = RuleMatch.AllOnes(family);
        box.High[0] = byte.MaxValue;
        box.High[1] = addressMax;
        box.High[2] = addressMax;
        box.High[3] = ushort.MaxValue;
        box.High[4] = ushort.MaxValue;

        // The root's lists: by priority, and per dimension sorted by low end and by high end. Clipping to a box
        // (max with its low, min with its high) keeps these orders, so children only filter them, never sort.
        int[] lists = ArrayPool<int>.Shared.Rent(Math.Max(Lists * n, 1));
        for (int i = 0; i < n; i++)
            lists[i] = i;
        var keys = new UInt128[n];
        for (int d = 0; d < Dims; d++)
        {
            SortedBy(_low[d], lists.AsSpan((1 + 2 * d) * n, n), keys);
            SortedBy(_high[d], lists.AsSpan((2 + 2 * d) * n, n), keys);
        }
        BuildNode(lists, n, box, 0, (int)root);
        return duplicates;
    }

    private static void SortedBy(UInt128[] values, Span<int> order, UInt128[] keys)
    {
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
            keys[i] = values[i];
        }
        keys.AsSpan(0, order.Length).Sort(order);
    }

    /// <summary>Builds the node for <paramref name="m"/> rules in <paramref name="lists"/> (which it returns to the pool).</summary>
    /// <param name="fixedIndex">The node index to use (a root), or -1 for a new one.</param>
    private uint BuildNode(int[] lists, int m, Box box, int depth, int fixedIndex)
    {
        m = DropUnreachable(lists, m, box);
        if (m <= _binth || depth == _depthLimit || !ChooseSplit(lists, m, box, out int dim, out UInt128 threshold, out int leftCount, out int rightCount))
        {
            if (m > LeafMax)
                throw new ClassifierLimitException(depth == _depthLimit
                    ? $"build classifier tree: {_family} rules need more than {_depthLimit} splits on a path (MaxDepth): a leaf at that depth still holds {m} rules, more than {LeafMax} (LeafMax); first rules there: {Sample(lists, m)}"
                    : $"build classifier tree: {_family} rules {Sample(lists, m)} cannot be split apart and are more than {LeafMax} (LeafMax)");
            uint leaf = EmitLeaf(lists, m, depth, fixedIndex);
            ArrayPool<int>.Shared.Return(lists);
            return leaf;
        }

        uint index = fixedIndex >= 0 ? (uint)fixedIndex : Allocate();
        int[] left = ArrayPool<int>.Shared.Rent(Lists * leftCount);
        int[] right = ArrayPool<int>.Shared.Rent(Lists * rightCount);
        var low = _low[dim];
        var high = _high[dim];
        for (int i = 0; i < m; i++)
        {
            int r = lists[i];
            _side[r] = (byte)((low[r] <= threshold ? 1 : 0) | (high[r] > threshold ? 2 : 0));
        }
        for (int list = 0; list < Lists; list++)
        {
            int from = list * m, toLeft = list * leftCount, toRight = list * rightCount;
            for (int i = 0; i < m; i++)
            {
                int r = lists[from + i];
                byte side = _side[r];
                if ((side & 1) != 0)
                    left[toLeft++] = r;
                if ((side & 2) != 0)
                    right[toRight++] = r;
            }
            Debug.Assert(toLeft == (list + 1) * leftCount && toRight == (list + 1) * rightCount, "the sweep's counts match the partition");
        }
        // The parent's lists are no longer needed: give them back before going down, so only the pending right
        // siblings along the current path hold memory.
        ArrayPool<int>.Shared.Return(lists);

        var leftBox = box;
        leftBox.High[dim] = threshold;
        var rightBox = box;
        rightBox.Low[dim] = threshold + 1;
        uint leftIndex = BuildNode(left, leftCount, leftBox, depth + 1, -1);
        uint rightIndex = BuildNode(right, rightCount, rightBox, depth + 1, -1);
        _nodes[(int)index] = TreeNode.Inner((TreeDim)dim, threshold, leftIndex, rightIndex);
        return index;
    }

    private uint Allocate()
    {
        _nodes.Add(default);
        return (uint)(_nodes.Count - 1);
    }

    /// <summary>
    /// Drops the rules that cannot match first anywhere in the box (see the class comment), compacting all the
    /// lists in place; returns the count left.
    /// </summary>
    private int DropUnreachable(int[] lists, int m, in Box box)
    {
        int stamp = ++_markStamp;
        int kept = 0;
        bool portRuleCovers = false;
        for (int i = 0; i < m; i++)
        {
            int r = lists[i];
            if (portRuleCovers && _requiresPorts[r])
                continue;
            _mark[r] = stamp;
            kept++;
            if (Covers(r, box))
            {
                if (!_requiresPorts[r])
                    break;
                portRuleCovers = true;
            }
        }
        if (kept == m)
            return m;
        // Writes never overtake reads: list k moves from k*m to k*kept, and kept < m.
        for (int list = 0; list < Lists; list++)
        {
            int from = list * m, to = list * kept;
            for (int i = 0; i < m; i++)
            {
                int r = lists[from + i];
                if (_mark[r] == stamp)
                    lists[to++] = r;
            }
        }
        return kept;
    }

    private bool Covers(int r, in Box box)
    {
        for (int d = 0; d < Dims; d++)
            if (_low[d][r] > box.Low[d] || _high[d][r] < box.High[d])
                return false;
        return true;
    }

    /// <summary>
    /// The dimension (by <see cref="SplitChoice"/>) and point (weighted segment median) to split at; false when
    /// no dimension has a rule endpoint strictly inside the box.
    /// </summary>
    private bool ChooseSplit(int[] lists, int m, in Box box, out int bestDim, out UInt128 bestThreshold, out int bestLeft, out int bestRight)
    {
        bestDim = -1;
        bestThreshold = 0;
        bestLeft = bestRight = 0;
        double bestScore = double.MaxValue;
        int bestTie = int.MaxValue;
        for (int d = 0; d < Dims; d++)
        {
            int segments = Segments(lists, m, d, box.Low[d], box.High[d], out long weight);
            if (segments < 2)
                continue;
            // The first segment at which the running weight reaches half the total; never the last one, so the
            // split point is strictly inside the box.
            long running = 0;
            int k = 0;
            for (; k < segments - 1; k++)
            {
                running += _segmentWeight[k];
                if (2 * running >= weight)
                    break;
            }
            if (k == segments - 1)
                k--;
            int left = _segmentLeft[k], right = _segmentRight[k];
            (double score, int tie) = _choice switch
            {
                SplitChoice.FewestRulesPerSegment => ((double)weight / segments, left + right),
                SplitChoice.FewestRuleCopies => (left + right, Math.Max(left, right)),
                _ => (Math.Max(left, right), left + right),
            };
            if (score < bestScore || (score == bestScore && tie < bestTie))
            {
                (bestScore, bestTie) = (score, tie);
                (bestDim, bestThreshold, bestLeft, bestRight) = (d, _segmentEnd[k], left, right);
            }
        }
        return bestDim >= 0;
    }

    /// <summary>
    /// Cuts [<paramref name="boxLow"/>, <paramref name="boxHigh"/>] of dimension <paramref name="d"/> into the
    /// elementary segments the clipped rule ranges make, in order; for each: its last value, its weight (rules
    /// overlapping it) and the rules on each side of a split right after it. Returns the segment count.
    /// </summary>
    private int Segments(int[] lists, int m, int d, UInt128 boxLow, UInt128 boxHigh, out long totalWeight)
    {
        var low = _low[d];
        var high = _high[d];
        var byLow = lists.AsSpan((1 + 2 * d) * m, m);
        var byHigh = lists.AsSpan((2 + 2 * d) * m, m);
        int count = 0, started = 0, ended = 0, cover = 0;
        totalWeight = 0;
        UInt128 x = boxLow;
        while (true)
        {
            // Every rule meets the box, so a clipped low end is <= x exactly when the rule's is, likewise high ends.
            while (started < m && low[byLow[started]] <= x)
            {
                cover++;
                started++;
            }
            while (ended < m && high[byHigh[ended]] < x)
            {
                cover--;
                ended++;
            }
            UInt128 end = boxHigh;
            if (started < m && low[byLow[started]] - 1 < end)
                end = low[byLow[started]] - 1;
            if (ended < m && high[byHigh[ended]] < end)
                end = high[byHigh[ended]];
            int endsHere = ended;
            while (endsHere < m && high[byHigh[endsHere]] <= end)
                endsHere++;
            _segmentEnd[count] = end;
            _segmentWeight[count] = cover;
            _segmentLeft[count] = started;
            _segmentRight[count] = m - endsHere;
            count++;
            totalWeight += cover;
            if (end == boxHigh)
                return count;
            x = end + 1;
        }
    }

    /// <summary>A leaf for the rules (in priority order), sharing the slots and node of an identical earlier leaf.</summary>
    private uint EmitLeaf(int[] lists, int m, int depth, int fixedIndex)
    {
        if (_global.Length > 0) // a family without rules has no paths to count
        {
            _leafPaths++;
            _depthSum += depth;
            _maxDepth = Math.Max(_maxDepth, depth);
            _maxLeaf = Math.Max(_maxLeaf, m);
        }
        int first = m == 0 ? 0 : _slots.Count; // every empty leaf is the same node, Leaf(0, 0)
        for (int i = 0; i < m; i++)
            _slots.Add((uint)_global[lists[i]]);
        var key = new LeafKey(first, m);
        if (_leaves.TryGetValue(key, out uint existing))
        {
            _slots.RemoveRange(first, m);
            if (fixedIndex < 0)
                return existing;
            var shared = _nodes[(int)existing];
            _nodes[fixedIndex] = shared;
            return (uint)fixedIndex;
        }
        uint index = fixedIndex >= 0 ? (uint)fixedIndex : Allocate();
        _nodes[(int)index] = TreeNode.Leaf((uint)first, (uint)m);
        _leaves.Add(key, index);
        return index;
    }

    private string Sample(int[] lists, int m)
    {
        var shown = Enumerable.Range(0, Math.Min(m, 8)).Select(i => _global[lists[i]].ToString());
        return string.Join(", ", shown) + (m > 8 ? ", ..." : "");
    }

    /// <summary>A box: the inclusive range of each dimension a node covers.</summary>
    private struct Box
    {
        public Range5 Low;
        public Range5 High;
    }

    [InlineArray(Dims)]
    private struct Range5
    {
        private UInt128 _element;
    }

    /// <summary>A leaf's rule list, as a range of <see cref="_slots"/>: leaves with equal lists share one node.</summary>
    private readonly record struct LeafKey(int First, int Count);

    private sealed class LeafComparer(List<uint> slots) : IEqualityComparer<LeafKey>
    {
        public bool Equals(LeafKey a, LeafKey b)
        {
            if (a.Count != b.Count)
                return false;
            for (int i = 0; i < a.Count; i++)
                if (slots[a.First + i] != slots[b.First + i])
                    return false;
            return true;
        }

        public int GetHashCode(LeafKey key)
        {
            var hash = new HashCode();
            hash.Add(key.Count);
            for (int i = 0; i < key.Count; i++)
                hash.Add(slots[key.First + i]);
            return hash.ToHashCode();
        }
    }
}
