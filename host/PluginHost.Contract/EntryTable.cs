namespace PluginHost.Contract;

/// <summary>
/// Many entries of one map in compact form, for large tables (a million prefixes): each entry is a row of
/// numbers, one per named field. Integer fields take their value; IPv4 fields take the address as a number
/// (a.b.c.d = a&lt;&lt;24 | b&lt;&lt;16 | c&lt;&lt;8 | d); the host writes each in the field's byte order. An IPv6 field
/// takes two numbers, named <c>NAME.hi</c> and <c>NAME.lo</c>: the address's first and last 8 bytes read as
/// big-endian numbers (contract 1.1). MAC fields need <see cref="MapEntry"/>. Fields not named are zero.
/// </summary>
public sealed class EntryTable
{
    private ulong[] _rows;

    /// <summary>An empty table for <paramref name="map"/> whose rows give the named fields, in order.</summary>
    public EntryTable(string map, IReadOnlyList<string> keyFields, IReadOnlyList<string> valueFields, int capacity = 16)
    {
        Map = map;
        KeyFields = keyFields;
        ValueFields = valueFields;
        _rows = new ulong[Math.Max(1, capacity) * Width];
    }

    /// <summary>The map the entries belong to.</summary>
    public string Map { get; }

    /// <summary>Key fields, in the order each row gives them.</summary>
    public IReadOnlyList<string> KeyFields { get; }

    /// <summary>Value fields, in the order each row gives them.</summary>
    public IReadOnlyList<string> ValueFields { get; }

    /// <summary>Number of entries.</summary>
    public int Count { get; private set; }

    private int Width => KeyFields.Count + ValueFields.Count;

    /// <summary>Add an entry: <paramref name="key"/> in <see cref="KeyFields"/> order, <paramref name="value"/> in <see cref="ValueFields"/> order.</summary>
    public void Add(ReadOnlySpan<ulong> key, ReadOnlySpan<ulong> value)
    {
        if (key.Length != KeyFields.Count || value.Length != ValueFields.Count)
            throw new ArgumentException($"add entry to table of map {Map}: expected {KeyFields.Count} key and {ValueFields.Count} value numbers");
        if ((Count + 1) * Width > _rows.Length)
            Array.Resize(ref _rows, _rows.Length * 2);
        key.CopyTo(_rows.AsSpan(Count * Width));
        value.CopyTo(_rows.AsSpan(Count * Width + KeyFields.Count));
        Count++;
    }

    /// <summary>Row <paramref name="index"/>: key numbers then value numbers.</summary>
    public ReadOnlySpan<ulong> Row(int index) => _rows.AsSpan(index * Width, Width);
}
