namespace PluginHost.Pipelines;

/// <summary>
/// One map's desired entries, already encoded with the map's codec and packed back to back, ready for a
/// batch update: a million prefixes are 16 MB here, not a million dictionaries.
/// </summary>
/// <param name="capacity">Entries room is made for at first (more grows the buffers, copying them).</param>
public sealed class PackedEntries(int keySize, int valueSize, int capacity = 16)
{
    private byte[] _keys = new byte[keySize * Math.Max(1, capacity)];
    private byte[] _values = new byte[valueSize * Math.Max(1, capacity)];

    public int KeySize { get; } = keySize;
    public int ValueSize { get; } = valueSize;
    public int Count { get; private set; }

    public ReadOnlySpan<byte> Keys => _keys.AsSpan(0, Count * KeySize);
    public ReadOnlySpan<byte> Values => _values.AsSpan(0, Count * ValueSize);

    public ReadOnlySpan<byte> Key(int i) => _keys.AsSpan(i * KeySize, KeySize);
    public ReadOnlySpan<byte> Value(int i) => _values.AsSpan(i * ValueSize, ValueSize);

    /// <summary>Encode an entry straight into the packed buffers.</summary>
    public void Add(Compose.StructLayout keyLayout, IReadOnlyDictionary<string, object> key, Compose.StructLayout valueLayout, IReadOnlyDictionary<string, object> value)
    {
        Grow();
        var k = _keys.AsSpan(Count * KeySize, KeySize);
        var v = _values.AsSpan(Count * ValueSize, ValueSize);
        k.Clear();
        v.Clear();
        keyLayout.EncodeInto(key, k);
        valueLayout.EncodeInto(value, v);
        Count++;
    }

    /// <summary>Encode a table's row straight into the packed buffers.</summary>
    public void Add(Compose.StructLayout keyLayout, Compose.FieldLayout[] keyFields, Compose.StructLayout valueLayout, Compose.FieldLayout[] valueFields, ReadOnlySpan<ulong> row)
    {
        Grow();
        var k = _keys.AsSpan(Count * KeySize, KeySize);
        var v = _values.AsSpan(Count * ValueSize, ValueSize);
        k.Clear();
        v.Clear();
        keyLayout.EncodeNumbers(keyFields, row[..keyFields.Length], k);
        valueLayout.EncodeNumbers(valueFields, row[keyFields.Length..], v);
        Count++;
    }

    private void Grow()
    {
        if ((Count + 1) * KeySize > _keys.Length)
        {
            Array.Resize(ref _keys, _keys.Length * 2);
            Array.Resize(ref _values, _values.Length * 2);
        }
    }

    /// <summary>Append all of <paramref name="other"/> (same sizes): two copies, whatever its count.</summary>
    public void AddRange(PackedEntries other)
    {
        if (other.KeySize != KeySize || other.ValueSize != ValueSize)
            throw new ArgumentException($"append packed entries: sizes {other.KeySize}/{other.ValueSize} differ from {KeySize}/{ValueSize}", nameof(other));
        int count = Count + other.Count;
        if (count * KeySize > _keys.Length)
        {
            Array.Resize(ref _keys, Math.Max(count, Count * 2) * KeySize);
            Array.Resize(ref _values, Math.Max(count, Count * 2) * ValueSize);
        }
        other.Keys.CopyTo(_keys.AsSpan(Count * KeySize));
        other.Values.CopyTo(_values.AsSpan(Count * ValueSize));
        Count = count;
    }

    public void Add(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        if ((Count + 1) * KeySize > _keys.Length)
        {
            Array.Resize(ref _keys, _keys.Length * 2);
            Array.Resize(ref _values, _values.Length * 2);
        }
        key.CopyTo(_keys.AsSpan(Count * KeySize));
        value.CopyTo(_values.AsSpan(Count * ValueSize));
        Count++;
    }
}
