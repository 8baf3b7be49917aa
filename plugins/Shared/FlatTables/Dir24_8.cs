namespace PluginHost.Plugins.Shared.FlatTables;

/// <summary>One IPv4 route of a flat table: the prefix (most significant byte first), its length (0–32) and its next-hop index.</summary>
internal readonly record struct Ipv4Route(uint Prefix, int Length, uint NextHop);

/// <summary>
/// An IPv4 longest-prefix-match table in the DIR-24-8 layout (Gupta, Lin and McKeown; DPDK's rte_lpm): a lookup is
/// one read of the first level, indexed by the address's top 24 bits, and a second read only when that entry points
/// to a 256-entry group holding prefixes longer than /24. See docs/design/flat-prefix-tables.md.
/// <para>The host keeps, beside the <see cref="Image"/> the datapath reads, the routes themselves (one dictionary per
/// length) and the length of the prefix that set each entry (DPDK's "depth"): an add overwrites only entries whose
/// depth is not longer than its own; a remove hands the entries it set to the next-shorter covering prefix.</para>
/// <para><see cref="Add"/> and <see cref="Remove"/> return the writes they made, in an order that never lets a
/// lookup running beside them see an answer that is neither the old nor the new one: a new group is filled before
/// the first level points to it, and a group left with no prefix longer than /24 (all its entries then equal) is
/// unhooked from the first level before it is freed. A freed group is reused last (first in, first out): a reader
/// that read the old pointer just before the unhook has the longest time to finish (the datapath still needs a
/// grace period before reuse; see the design note).</para>
/// </summary>
internal sealed class Dir24_8
{
    /// <summary>The largest group limit the second-level array can hold.</summary>
    public const int MaxGroupLimit = int.MaxValue / Dir24_8Image.GroupEntries;

    private readonly Dictionary<uint, uint>[] _routes = new Dictionary<uint, uint>[33];
    private readonly byte[] _depth1 = new byte[Dir24_8Image.Level1Entries];
    private readonly List<byte[]> _depth2 = [];
    private readonly Queue<uint> _free = new();

    /// <summary>An empty table that may use up to <paramref name="maxGroups"/> second-level groups.</summary>
    public Dir24_8(int maxGroups)
    {
        if (maxGroups < 0 || maxGroups > MaxGroupLimit)
            throw new ArgumentOutOfRangeException(nameof(maxGroups), maxGroups, $"the group limit is 0 to {MaxGroupLimit:N0}");
        MaxGroups = maxGroups;
        for (int i = 0; i < _routes.Length; i++)
            _routes[i] = [];
    }

    /// <summary>What the datapath reads.</summary>
    public Dir24_8Image Image { get; } = new();

    /// <summary>The most second-level groups this table may use.</summary>
    public int MaxGroups { get; }

    /// <summary>Second-level groups in use.</summary>
    public int GroupsUsed => _depth2.Count - _free.Count;

    /// <summary>Routes held.</summary>
    public int Count { get; private set; }

    /// <summary>Bytes of the first level (2^24 × 4).</summary>
    public static long Level1Bytes => (long)Dir24_8Image.Level1Entries * sizeof(uint);

    /// <summary>Bytes of the groups in use (groups × 256 × 4).</summary>
    public long GroupBytes => (long)GroupsUsed * Dir24_8Image.GroupEntries * sizeof(uint);

    /// <summary>The next-hop index for <paramref name="address"/>, 0 when no prefix covers it.</summary>
    public uint Lookup(uint address) => Image.Lookup(address);

    /// <summary>
    /// A table holding <paramref name="routes"/> (host bits are ignored; a prefix given twice keeps its last next hop),
    /// built in one pass: shortest prefixes painted first, then the groups. Throws <see cref="FlatTableFullException"/>
    /// before building anything when the routes need more than <paramref name="maxGroups"/> groups.
    /// </summary>
    public static Dir24_8 Build(IEnumerable<Ipv4Route> routes, int maxGroups)
    {
        var table = new Dir24_8(maxGroups);
        foreach (var route in routes)
            table.Remember(route);

        var needed = new HashSet<uint>();
        for (int length = 25; length <= 32; length++)
            foreach (uint prefix in table._routes[length].Keys)
                needed.Add(prefix >> 8);
        if (needed.Count > maxGroups)
            throw Full("build flat table", needed.Count, maxGroups);
        table.Image.Reserve(needed.Count);
        table._depth2.Capacity = needed.Count;

        for (int length = 0; length <= 24; length++)
            foreach (var (prefix, nextHop) in table._routes[length])
            {
                int first = (int)(prefix >> 8), count = 1 << (24 - length);
                table.Image.Level1Range(first, count).Fill(nextHop);
                table._depth1.AsSpan(first, count).Fill((byte)length);
            }

        for (int length = 25; length <= 32; length++)
            foreach (var (prefix, nextHop) in table._routes[length])
            {
                uint index = prefix >> 8;
                uint entry = table.Image.Level1[(int)index];
                uint group;
                if ((entry & Dir24_8Image.GroupFlag) != 0)
                    group = entry & ~Dir24_8Image.GroupFlag;
                else
                {
                    group = table.NewGroup();
                    table.Image.Group(group).Fill(entry);
                    table._depth2[(int)group].AsSpan().Fill(table._depth1[index]);
                    table.Image.SetLevel1(index, Dir24_8Image.GroupFlag | group);
                }
                var values = table.Image.Group(group);
                var depths = table._depth2[(int)group];
                int low = (int)(prefix & 0xFF), count = 1 << (32 - length);
                values.Slice(low, count).Fill(nextHop);
                depths.AsSpan(low, count).Fill((byte)length);
            }
        return table;
    }

    /// <summary>The next hop of the route <paramref name="prefix"/>/<paramref name="length"/>, or null when the table does not hold it.</summary>
    public uint? Find(uint prefix, int length) =>
        _routes[CheckLength(length)].TryGetValue(Mask(prefix, length), out uint nextHop) ? nextHop : null;

    /// <summary>
    /// Add a route, or change its next hop; returns the writes made, in a safe order (empty when nothing changed).
    /// Throws <see cref="FlatTableFullException"/>, changing nothing, when it needs a group and none is left.
    /// </summary>
    public IReadOnlyList<FlatWrite> Add(uint prefix, int length, uint nextHop)
    {
        CheckLength(length);
        if (nextHop is 0 or > Dir24_8Image.MaxNextHop)
            throw new ArgumentOutOfRangeException(nameof(nextHop), nextHop, $"a next-hop index is 1 to {Dir24_8Image.MaxNextHop:N0}");
        prefix = Mask(prefix, length);
        if (_routes[length].TryGetValue(prefix, out uint old) && old == nextHop)
            return [];

        var writes = new List<FlatWrite>();
        if (length <= 24)
        {
            uint first = prefix >> 8, end = first + (1u << (24 - length));
            _routes[length][prefix] = nextHop;
            if (old == 0)
                Count++;
            for (uint i = first; i < end; i++)
            {
                if (_depth1[i] > length)
                    continue; // a longer prefix (up to /24) owns this /24
                _depth1[i] = (byte)length;
                uint entry = Image.Level1[(int)i];
                if ((entry & Dir24_8Image.GroupFlag) != 0)
                    Paint(entry & ~Dir24_8Image.GroupFlag, 0, Dir24_8Image.GroupEntries, length, nextHop, canOverwrite: d => d <= length, writes);
                else
                    Write(writes, new FlatWrite(1, i, nextHop));
            }
            return writes;
        }

        uint index = prefix >> 8;
        uint current = Image.Level1[(int)index];
        int low = (int)(prefix & 0xFF), stop = low + (1 << (32 - length));
        if ((current & Dir24_8Image.GroupFlag) != 0)
        {
            _routes[length][prefix] = nextHop;
            if (old == 0)
                Count++;
            Paint(current & ~Dir24_8Image.GroupFlag, low, stop, length, nextHop, canOverwrite: d => d <= length, writes);
            return writes;
        }

        // A new group: fill every entry with its final answer while nothing points to it, then point the first level at it.
        if (_free.Count == 0 && _depth2.Count >= MaxGroups)
            throw Full($"add {FormatPrefix(prefix, length)}", _depth2.Count + 1, MaxGroups);
        _routes[length][prefix] = nextHop;
        Count++;
        uint group = NewGroup();
        var depths = _depth2[(int)group];
        byte baseDepth = _depth1[index];
        for (int j = 0; j < Dir24_8Image.GroupEntries; j++)
        {
            bool mine = j >= low && j < stop;
            depths[j] = mine ? (byte)length : baseDepth;
            Write(writes, new FlatWrite(2, (group << 8) | (uint)j, mine ? nextHop : current));
        }
        Write(writes, new FlatWrite(1, index, Dir24_8Image.GroupFlag | group));
        return writes;
    }

    /// <summary>
    /// Remove a route; its entries take the answer of the next-shorter prefix that covers it (or no route). Returns the
    /// writes made, in a safe order (empty when the table does not hold the route).
    /// </summary>
    public IReadOnlyList<FlatWrite> Remove(uint prefix, int length)
    {
        CheckLength(length);
        prefix = Mask(prefix, length);
        if (!_routes[length].Remove(prefix))
            return [];
        Count--;
        var (heir, heirLength) = Covering(prefix, length);

        var writes = new List<FlatWrite>();
        if (length <= 24)
        {
            uint first = prefix >> 8, end = first + (1u << (24 - length));
            for (uint i = first; i < end; i++)
            {
                if (_depth1[i] != length)
                    continue; // a longer prefix (up to /24) owns this /24
                _depth1[i] = (byte)heirLength;
                uint entry = Image.Level1[(int)i];
                if ((entry & Dir24_8Image.GroupFlag) != 0)
                    Paint(entry & ~Dir24_8Image.GroupFlag, 0, Dir24_8Image.GroupEntries, heirLength, heir, canOverwrite: d => d == length, writes);
                else
                    Write(writes, new FlatWrite(1, i, heir));
            }
            return writes;
        }

        uint index = prefix >> 8;
        uint group = Image.Level1[(int)index] & ~Dir24_8Image.GroupFlag;
        int low = (int)(prefix & 0xFF), stop = low + (1 << (32 - length));
        Paint(group, low, stop, heirLength, heir, canOverwrite: d => d == length, writes);

        // No prefix longer than /24 left in the group: every entry now holds the /24's answer. Unhook, then free.
        var depths = _depth2[(int)group];
        for (int j = 0; j < Dir24_8Image.GroupEntries; j++)
            if (depths[j] > 24)
                return writes;
        Write(writes, new FlatWrite(1, index, Image.Group(group)[0]));
        _free.Enqueue(group);
        return writes;
    }

    private void Paint(uint group, int low, int stop, int length, uint nextHop, Func<byte, bool> canOverwrite, List<FlatWrite> writes)
    {
        var depths = _depth2[(int)group];
        for (int j = low; j < stop; j++)
        {
            if (!canOverwrite(depths[j]))
                continue;
            depths[j] = (byte)length;
            Write(writes, new FlatWrite(2, (group << 8) | (uint)j, nextHop));
        }
    }

    private void Write(List<FlatWrite> writes, FlatWrite write)
    {
        Image.Apply(write);
        writes.Add(write);
    }

    /// <summary>The longest route shorter than <paramref name="length"/> covering <paramref name="prefix"/>: its next hop and length, or (0, 0).</summary>
    private (uint NextHop, int Length) Covering(uint prefix, int length)
    {
        for (int l = length - 1; l >= 0; l--)
            if (_routes[l].TryGetValue(Mask(prefix, l), out uint nextHop))
                return (nextHop, l);
        return (0, 0);
    }

    private void Remember(Ipv4Route route)
    {
        CheckLength(route.Length);
        if (route.NextHop is 0 or > Dir24_8Image.MaxNextHop)
            throw new ArgumentOutOfRangeException(nameof(route), route.NextHop, $"a next-hop index is 1 to {Dir24_8Image.MaxNextHop:N0}");
        var routes = _routes[route.Length];
        int before = routes.Count;
        routes[Mask(route.Prefix, route.Length)] = route.NextHop;
        Count += routes.Count - before;
    }

    private uint NewGroup()
    {
        if (_free.TryDequeue(out uint group))
            return group;
        _depth2.Add(new byte[Dir24_8Image.GroupEntries]);
        return (uint)(_depth2.Count - 1);
    }

    private static FlatTableFullException Full(string verb, int needed, int limit) =>
        new($"{verb}: {needed:N0} second-level groups needed, the limit is {limit:N0} (raise the group limit or drop prefixes longer than /24)", needed, limit);

    private static int CheckLength(int length) =>
        length is >= 0 and <= 32 ? length : throw new ArgumentOutOfRangeException(nameof(length), length, "an IPv4 prefix length is 0 to 32");

    internal static uint Mask(uint prefix, int length) => length == 0 ? 0 : prefix & (uint.MaxValue << (32 - length));

    private static string FormatPrefix(uint prefix, int length) =>
        $"{prefix >> 24}.{(prefix >> 16) & 0xFF}.{(prefix >> 8) & 0xFF}.{prefix & 0xFF}/{length}";
}
