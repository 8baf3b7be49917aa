namespace PluginHost.Pipelines;

/// <summary>
/// A hash index over the keys of a <see cref="PackedEntries"/>: finds an entry by key bytes with no allocation
/// per entry (open addressing over one int array), so a million entries cost 8 MB here, not a million objects.
/// A key that occurs twice is found at its last occurrence, as a batch update leaves it in the kernel.
/// </summary>
internal sealed class PackedIndex
{
    private readonly int[] _slots; // entry index + 1; 0 = empty
    private readonly int _mask;

    public PackedIndex(PackedEntries entries)
    {
        Entries = entries;
        int capacity = 16;
        while (capacity < entries.Count * 2)
            capacity <<= 1;
        _slots = new int[capacity];
        _mask = capacity - 1;
        for (int i = 0; i < entries.Count; i++)
        {
            int slot = Probe(entries.Key(i));
            _slots[slot] = i + 1;
        }
    }

    public PackedEntries Entries { get; }

    /// <summary>The index of the entry with this key, or -1.</summary>
    public int Find(ReadOnlySpan<byte> key) => _slots[Probe(key)] - 1;

    // The slot holding the key, or the empty slot where it would go (linear probing; the table is at most half full).
    private int Probe(ReadOnlySpan<byte> key)
    {
        var hash = new HashCode();
        hash.AddBytes(key);
        int slot = hash.ToHashCode() & _mask;
        while (_slots[slot] != 0 && !Entries.Key(_slots[slot] - 1).SequenceEqual(key))
            slot = (slot + 1) & _mask;
        return slot;
    }
}
