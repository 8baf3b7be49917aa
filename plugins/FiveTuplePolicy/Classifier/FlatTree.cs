using System.Runtime.InteropServices;

namespace PluginHost.Plugins.FiveTuplePolicy.Classifier;

/// <summary>What an inner node compares (dims 0-4), or <see cref="Leaf"/>.</summary>
internal enum TreeDim : uint
{
    Protocol = 0,
    Source = 1,
    Destination = 2,
    SourcePort = 3,
    DestinationPort = 4,
    Leaf = 5,
}

/// <summary>
/// One node, exactly as a value of the nodes BPF array (32 bytes, little-endian):
/// <c>struct { __u64 thr_hi; __u64 thr_lo; __u32 left; __u32 right; __u32 dim; __u32 pad; }</c>.
/// Inner node: go to <c>left</c> when key[dim] &lt;= thr_hi:thr_lo (unsigned 128-bit), else to <c>right</c>.
/// Leaf (dim 5): <c>left</c> is the first slot, <c>right</c> the number of slots; thr is 0.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct TreeNode
{
    public ulong ThresholdHigh; // offset 0
    public ulong ThresholdLow;  // offset 8
    public uint Left;           // offset 16: left child, or the leaf's first slot
    public uint Right;          // offset 20: right child, or the leaf's slot count
    public uint Dim;            // offset 24: TreeDim
    public uint Pad;            // offset 28: 0

    public static TreeNode Inner(TreeDim dim, UInt128 threshold, uint left, uint right) =>
        new() { ThresholdHigh = (ulong)(threshold >> 64), ThresholdLow = (ulong)threshold, Left = left, Right = right, Dim = (uint)dim };

    public static TreeNode Leaf(uint firstSlot, uint count) =>
        new() { Left = firstSlot, Right = count, Dim = (uint)TreeDim.Leaf };
}

/// <summary>
/// One rule as the leaf check reads it, exactly as a value of the rules BPF array (80 bytes, little-endian),
/// u64s first so every field is naturally aligned:
/// <code>
/// struct {
///     __u64 src_hi, src_lo, src_mask_hi, src_mask_lo;  //  0, 8, 16, 24
///     __u64 dst_hi, dst_lo, dst_mask_hi, dst_mask_lo;  // 32, 40, 48, 56
///     __u16 sport_lo, sport_hi, dport_lo, dport_hi;    // 64, 66, 68, 70
///     __u8  proto_lo, proto_hi, requires_ports, pad0;  // 72, 73, 74, 75
///     __u32 pad1;                                      // 76
/// };
/// </code>
/// A packet matches when proto_lo &lt;= proto &lt;= proto_hi, (src &amp; src_mask) == src for both halves, the same
/// for dst, and, if requires_ports, the packet has ports within both ranges. IPv4 uses the low halves only
/// (the high halves are 0).
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 80)]
internal struct TreeRule
{
    public ulong SourceHigh;
    public ulong SourceLow;
    public ulong SourceMaskHigh;
    public ulong SourceMaskLow;
    public ulong DestinationHigh;
    public ulong DestinationLow;
    public ulong DestinationMaskHigh;
    public ulong DestinationMaskLow;
    public ushort SourcePortLow;
    public ushort SourcePortHigh;
    public ushort DestinationPortLow;
    public ushort DestinationPortHigh;
    public byte ProtocolLow;
    public byte ProtocolHigh;
    public byte RequiresPorts;
    public byte Pad0;
    public uint Pad1;

    public static TreeRule From(in RuleMatch rule)
    {
        UInt128 sourceMask = rule.SourceMask, destinationMask = rule.DestinationMask;
        return new TreeRule
        {
            SourceHigh = (ulong)(rule.Source >> 64),
            SourceLow = (ulong)rule.Source,
            SourceMaskHigh = (ulong)(sourceMask >> 64),
            SourceMaskLow = (ulong)sourceMask,
            DestinationHigh = (ulong)(rule.Destination >> 64),
            DestinationLow = (ulong)rule.Destination,
            DestinationMaskHigh = (ulong)(destinationMask >> 64),
            DestinationMaskLow = (ulong)destinationMask,
            SourcePortLow = rule.SourcePortLow,
            SourcePortHigh = rule.SourcePortHigh,
            DestinationPortLow = rule.DestinationPortLow,
            DestinationPortHigh = rule.DestinationPortHigh,
            ProtocolLow = rule.ProtocolLow,
            ProtocolHigh = rule.ProtocolHigh,
            RequiresPorts = rule.RequiresPorts ? (byte)1 : (byte)0,
        };
    }
}

/// <summary>One lookup's answer (rule index or -1) and its cost: nodes read (the leaf included) and rules checked.</summary>
internal readonly record struct TreeLookup(int Rule, int NodesVisited, int RulesChecked);

/// <summary>The size and shape of a built tree. Bytes are as BPF array maps hold them (values rounded up to 8 bytes, at least one entry).</summary>
internal sealed record TreeStats(int Rules, int DuplicateRules, int Nodes, int Leaves, int EmptyLeaves, int Slots, int MaxDepth,
    double AverageDepth, int MaxLeafRules, long NodeBytes, long SlotBytes, long RuleBytes, TimeSpan BuildTime)
{
    public long TotalBytes => NodeBytes + SlotBytes + RuleBytes;

    public override string ToString() =>
        $"{Rules} rules ({DuplicateRules} duplicates), {Nodes} nodes, {Leaves} leaves ({EmptyLeaves} empty), {Slots} slots, " +
        $"depth max {MaxDepth} avg {AverageDepth:F1}, leaf max {MaxLeafRules}, {TotalBytes / 1024.0:F0} KiB " +
        $"(nodes {NodeBytes / 1024.0:F0}, slots {SlotBytes / 1024.0:F0}, rules {RuleBytes / 1024.0:F0}), built in {BuildTime.TotalMilliseconds:F0} ms";
}

/// <summary>
/// The classifier as the BPF maps hold it: three arrays indexed by u32 and two roots. The IPv4 tree starts at
/// node <see cref="Ipv4Root"/> (0), the IPv6 tree at <see cref="Ipv6Root"/> (1); a family with no rules has an
/// empty leaf there. <see cref="Classify"/> is the BPF program's walk, step by step.
/// </summary>
internal sealed class FlatTree
{
    public const uint Ipv4Root = 0;
    public const uint Ipv6Root = 1;

    private readonly TreeNode[] _nodes;
    private readonly uint[] _slots;
    private readonly TreeRule[] _rules;

    public FlatTree(TreeNode[] nodes, uint[] slots, TreeRule[] rules, TreeStats stats)
    {
        _nodes = nodes;
        _slots = slots;
        _rules = rules;
        Stats = stats;
    }

    public ReadOnlySpan<TreeNode> Nodes => _nodes;
    public ReadOnlySpan<uint> Slots => _slots;
    public ReadOnlySpan<TreeRule> Rules => _rules;
    public TreeStats Stats { get; }

    /// <summary>The map values as bytes, in order (host byte order, as bpf_map_update_elem takes them).</summary>
    public ReadOnlySpan<byte> NodeBytes => MemoryMarshal.AsBytes(Nodes);
    public ReadOnlySpan<byte> SlotBytes => MemoryMarshal.AsBytes(Slots);
    public ReadOnlySpan<byte> RuleBytes => MemoryMarshal.AsBytes(Rules);

    /// <summary>
    /// The walk the BPF program makes: at most <see cref="TreeBuilder.MaxDepth"/> inner nodes, then at most
    /// <see cref="TreeBuilder.LeafMax"/> rules of the leaf, in order; the first that matches wins.
    /// </summary>
    public TreeLookup Classify(in PacketKey key)
    {
        uint index = key.Family == IpFamily.IPv4 ? Ipv4Root : Ipv6Root;
        int visited = 0;
        TreeNode node = default;
        bool atLeaf = false;
        // MaxDepth inner nodes and the leaf: the BPF loop's bound, so a corrupt map cannot loop forever.
        for (int step = 0; step <= TreeBuilder.MaxDepth; step++)
        {
            if (index >= (uint)_nodes.Length)
                return new TreeLookup(-1, visited, 0); // bpf_map_lookup_elem would return NULL
            node = _nodes[index];
            visited++;
            if (node.Dim == (uint)TreeDim.Leaf)
            {
                atLeaf = true;
                break;
            }
            if (node.Dim > (uint)TreeDim.DestinationPort)
                return new TreeLookup(-1, visited, 0);
            (ulong high, ulong low) = (TreeDim)node.Dim switch
            {
                TreeDim.Protocol => (0UL, (ulong)key.Protocol),
                TreeDim.Source => ((ulong)(key.Source >> 64), (ulong)key.Source),
                TreeDim.Destination => ((ulong)(key.Destination >> 64), (ulong)key.Destination),
                TreeDim.SourcePort => (0UL, (ulong)key.SourcePort),
                _ => (0UL, (ulong)key.DestinationPort),
            };
            bool left = high < node.ThresholdHigh || (high == node.ThresholdHigh && low <= node.ThresholdLow);
            index = left ? node.Left : node.Right;
        }
        if (!atLeaf)
            return new TreeLookup(-1, visited, 0);

        ulong srcHigh = (ulong)(key.Source >> 64), srcLow = (ulong)key.Source;
        ulong dstHigh = (ulong)(key.Destination >> 64), dstLow = (ulong)key.Destination;
        int checkedRules = 0;
        for (uint j = 0; j < TreeBuilder.LeafMax && j < node.Right; j++)
        {
            uint slot = node.Left + j;
            if (slot >= (uint)_slots.Length)
                break;
            uint ruleIndex = _slots[slot];
            if (ruleIndex >= (uint)_rules.Length)
                break;
            ref readonly TreeRule r = ref _rules[ruleIndex];
            checkedRules++;
            if (key.Protocol >= r.ProtocolLow && key.Protocol <= r.ProtocolHigh
                && (srcHigh & r.SourceMaskHigh) == r.SourceHigh && (srcLow & r.SourceMaskLow) == r.SourceLow
                && (dstHigh & r.DestinationMaskHigh) == r.DestinationHigh && (dstLow & r.DestinationMaskLow) == r.DestinationLow
                && (r.RequiresPorts == 0
                    || (key.HasPorts
                        && key.SourcePort >= r.SourcePortLow && key.SourcePort <= r.SourcePortHigh
                        && key.DestinationPort >= r.DestinationPortLow && key.DestinationPort <= r.DestinationPortHigh)))
                return new TreeLookup((int)ruleIndex, visited, checkedRules);
        }
        return new TreeLookup(-1, visited, checkedRules);
    }

    /// <summary>The rule index only: <see cref="Classify"/> without the cost figures.</summary>
    public int Match(in PacketKey key) => Classify(key).Rule;
}
