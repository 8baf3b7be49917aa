namespace PluginHost.Pipelines;

/// <summary>
/// A hash index over the keys of a <see cref="PackedEntries"/>: finds an entry by key bytes with no allocation
/// per entry (open addressing over one int array), so a million entries cost 8 MB here, not a million objects.
/// A key that occurs twice is found at its last occurrence, as a batch update leaves it in the kernel.
/// </summary>
internal sealed class PackedIndex(PackedEntries entries)
{
    private int[]? _slots; // entry index + 1; 0 = empty. Built on the first Find: a map compared as memory needs none.
    private int _mask;
    private bool _duplicates;

    public PackedEntries Entries { get; } = entries;

    /// <summary>Some key occurs more than once.</summary>
    public bool HasDuplicates
    {
        get
        {
            Build();
            return _duplicates;
        }
    }

    private bool? _ascending;

    /// <summary>Keys strictly ascending (<see cref="KeyOrder"/>): no key repeats, and a merge compares two such lists without an index.</summary>
    public bool Ascending => _ascending ??= KeyOrder.Ascending(Entries);

    /// <summary>The index of the entry with this key, or -1.</summary>
    public int Find(ReadOnlySpan<byte> key)
    {
        Build();
        return _slots![Probe(key)] - 1;
    }

    private void Build()
    {
        if (_slots is not null)
            return;
        int capacity = 16;
        while (capacity < Entries.Count * 2)
            capacity <<= 1;
        _slots = new int[capacity];
        _mask = capacity - 1;
        for (int i = 0; i < Entries.Count; i++)
        {
            int slot = Probe(Entries.Key(i));
            _duplicates |= _slots[slot] != 0;
            _slots[slot] = i + 1;
        }
    }

    // The slot holding the key, or the empty slot where it would go (linear probing; the table is at most half full).
    private int Probe(ReadOnlySpan<byte> key)
    {
        var hash = new HashCode();
        hash.AddBytes(key);
        int slot = hash.ToHashCode() & _mask;
        while (_slots![slot] != 0 && !Entries.Key(_slots[slot] - 1).SequenceEqual(key))
            slot = (slot + 1) & _mask;
        return slot;
    }
}

/// <summary>
/// An order of packed keys: 4-byte keys (array indexes) as little-endian numbers, others byte by byte. Tables a plugin
/// builds in index order come out ascending in it, and two ascending lists are compared by one merge.
/// </summary>
internal static class KeyOrder
{
    public static int Compare(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) =>
        a.Length == 4 && b.Length == 4
            ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(a).CompareTo(System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b))
            : a.SequenceCompareTo(b);

    public static bool Ascending(PackedEntries entries)
    {
        if (entries.KeySize == 4 && BitConverter.IsLittleEndian)
        {
            // Array indexes, tens of thousands: compared as numbers in place.
            var keys = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(entries.Keys);
            for (int i = 1; i < keys.Length; i++)
                if (keys[i - 1] >= keys[i])
                    return false;
            return true;
        }
        for (int i = 1; i < entries.Count; i++)
            if (Compare(entries.Key(i - 1), entries.Key(i)) >= 0)
                return false;
        return true;
    }
}
