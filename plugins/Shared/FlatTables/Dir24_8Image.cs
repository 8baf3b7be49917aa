namespace PluginHost.Plugins.Shared.FlatTables;

/// <summary>
/// What the datapath reads of a DIR-24-8 table: the first level (2^24 u32 entries, one per /24) and the second-level
/// groups (256 u32 entries each, one per address of a /24 that holds prefixes longer than /24), laid out as the two
/// BPF ARRAY maps would be. An entry is 0 (no route), a next-hop index (1 to <see cref="MaxNextHop"/>), or, in the
/// first level only, <see cref="GroupFlag"/> | the group's number.
/// <para>Changes arrive only as <see cref="FlatWrite"/>s through <see cref="Apply"/>, so a copy that replays the same
/// writes (a BPF map, or a test's replica) holds the same image.</para>
/// </summary>
internal sealed class Dir24_8Image
{
    /// <summary>Entries of the first level: one per /24.</summary>
    public const int Level1Entries = 1 << 24;

    /// <summary>Entries of one second-level group: one per address of a /24.</summary>
    public const int GroupEntries = 256;

    /// <summary>Set in a first-level entry that points to a second-level group (the low bits are the group's number).</summary>
    public const uint GroupFlag = 0x8000_0000;

    /// <summary>The largest next-hop index an entry can hold (0 is "no route").</summary>
    public const uint MaxNextHop = GroupFlag - 1;

    private readonly uint[] _level1;
    private uint[] _level2;

    public Dir24_8Image()
    {
        _level1 = new uint[Level1Entries];
        _level2 = [];
    }

    private Dir24_8Image(uint[] level1, uint[] level2)
    {
        _level1 = level1;
        _level2 = level2;
    }

    /// <summary>The first level (read-only view).</summary>
    public ReadOnlySpan<uint> Level1 => _level1;

    /// <summary>The second level as allocated so far (read-only view; entries past the groups in use are stale or 0).</summary>
    public ReadOnlySpan<uint> Level2 => _level2;

    /// <summary>The next-hop index for <paramref name="address"/> (most significant byte first), 0 when no prefix covers it: at most two reads.</summary>
    public uint Lookup(uint address)
    {
        uint entry = _level1[address >> 8];
        if ((entry & GroupFlag) == 0)
            return entry;
        uint index = ((entry & ~GroupFlag) << 8) | (address & 0xFF);
        return index < (uint)_level2.Length ? _level2[index] : 0; // a group never written reads as 0, like a fresh BPF array entry
    }

    /// <summary>Apply one write (the second level grows to hold any group it names).</summary>
    public void Apply(in FlatWrite write)
    {
        if (write.Level == 1)
        {
            _level1[write.Index] = write.Value;
            return;
        }
        EnsureLevel2((write.Index >> 8) + 1);
        _level2[write.Index] = write.Value;
    }

    /// <summary>A deep copy: a replica that later writes can be replayed onto.</summary>
    public Dir24_8Image Clone() => new((uint[])_level1.Clone(), (uint[])_level2.Clone());

    internal void SetLevel1(uint index, uint value) => _level1[index] = value;

    internal Span<uint> Level1Range(int first, int count) => _level1.AsSpan(first, count);

    /// <summary>Allocate room for <paramref name="groups"/> groups at once (a build knows how many it needs).</summary>
    internal void Reserve(int groups)
    {
        long needed = (long)groups * GroupEntries;
        if (needed > _level2.Length)
            Array.Resize(ref _level2, (int)needed);
    }

    internal Span<uint> Group(uint group)
    {
        EnsureLevel2(group + 1);
        return _level2.AsSpan((int)(group << 8), GroupEntries);
    }

    private void EnsureLevel2(uint groups)
    {
        long needed = (long)groups * GroupEntries;
        if (needed <= _level2.Length)
            return;
        long size = Math.Max(needed, Math.Max(16L * GroupEntries, 2L * _level2.Length));
        Array.Resize(ref _level2, (int)Math.Min(size, Array.MaxLength));
    }
}
