using PluginHost.Interop;

namespace PluginHost.Kernel;

/// <summary>A BPF map (an fd the host owns) with raw byte access; typed access goes through a codec.</summary>
public sealed unsafe class BpfMap : IDisposable
{
    private readonly Lazy<MapInfo> _info;

    internal BpfMap(string name, SafeFd handle)
    {
        Name = name;
        Handle = handle;
        _info = new Lazy<MapInfo>(() => ObjectInfo.Map(Handle));
    }

    public string Name { get; }

    internal SafeFd Handle { get; }

    public MapInfo Info => _info.Value;

    /// <summary>Open a pinned map.</summary>
    public static BpfMap OpenPinned(string path) => new(Path.GetFileName(path), BpfFs.OpenPinned(path, "map"));

    public void Pin(string path) => BpfFs.Pin(Handle, path);

    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags = Libbpf.BPF_ANY)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            int rc = Libbpf.bpf_map_update_elem(Handle.Fd, k, v, flags);
            if (rc < 0)
                throw new BpfException($"update map {Name}", rc);
        }
    }

    private int _batchUnsupported;

    /// <summary>
    /// Write many entries (keys and values packed back to back). Uses BPF_MAP_UPDATE_BATCH, one syscall per
    /// chunk, where the kernel offers it for this map type, and single updates otherwise.
    /// </summary>
    public void UpdateMany(ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, int count, Action<int>? progress = null)
    {
        int keySize = keys.Length / Math.Max(1, count), valueSize = values.Length / Math.Max(1, count);
        const int Chunk = 16384;
        for (int done = 0; done < count;)
        {
            int n = Math.Min(Chunk, count - done);
            var k = keys.Slice(done * keySize, n * keySize);
            var v = values.Slice(done * valueSize, n * valueSize);
            if (Volatile.Read(ref _batchUnsupported) == 0 && TryBatch(k, v, n))
            {
                done += n;
            }
            else
            {
                for (int i = 0; i < n; i++)
                    Update(k.Slice(i * keySize, keySize), v.Slice(i * valueSize, valueSize));
                done += n;
            }
            progress?.Invoke(done);
        }
    }

    private bool TryBatch(ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, int n)
    {
        fixed (byte* k = keys)
        fixed (byte* v = values)
        {
            uint count = (uint)n;
            var opts = new Libbpf.bpf_map_batch_opts { sz = (nuint)sizeof(Libbpf.bpf_map_batch_opts) };
            int rc = Libbpf.bpf_map_update_batch(Handle.Fd, k, v, &count, &opts);
            if (rc == 0)
                return true;
            if (rc is -22 or -95 or -524 && count == 0) // EINVAL, EOPNOTSUPP, ENOTSUPP: this map type has no batch ops
            {
                Volatile.Write(ref _batchUnsupported, 1);
                return false;
            }
            throw new BpfException($"update map {Name} ({n} entries in one batch, {count} written)", rc);
        }
    }

    /// <summary>Read one entry into <paramref name="value"/>; false when the key is absent.</summary>
    public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            int rc = Libbpf.bpf_map_lookup_elem(Handle.Fd, k, v);
            if (rc == -2)
                return false;
            if (rc < 0)
                throw new BpfException($"look up map {Name}", rc);
            return true;
        }
    }

    public bool Delete(ReadOnlySpan<byte> key)
    {
        fixed (byte* k = key)
        {
            int rc = Libbpf.bpf_map_delete_elem(Handle.Fd, k);
            if (rc == -2)
                return false;
            if (rc < 0)
                throw new BpfException($"delete from map {Name}", rc);
            return true;
        }
    }

    /// <summary>All keys, in the kernel's iteration order.</summary>
    public List<byte[]> Keys()
    {
        var keys = new List<byte[]>();
        var next = new byte[Info.KeySize];
        byte[]? current = null;
        while (true)
        {
            int rc;
            fixed (byte* c = current)
            fixed (byte* n = next)
                rc = Libbpf.bpf_map_get_next_key(Handle.Fd, c, n);
            if (rc == -2)
                return keys;
            if (rc < 0)
                throw new BpfException($"iterate map {Name}", rc);
            keys.Add(next.ToArray());
            current = keys[^1];
        }
    }

    /// <summary>Put a program fd into a prog array slot.</summary>
    public void SetProgram(uint slot, BpfProgram program)
    {
        uint fd = (uint)program.Handle.Fd;
        Update(new ReadOnlySpan<byte>(&slot, 4), new ReadOnlySpan<byte>(&fd, 4));
    }

    public void Dispose() => Handle.Dispose();
}

/// <summary>What the kernel reports about a map.</summary>
public sealed record MapInfo(uint Type, uint Id, uint KeySize, uint ValueSize, uint MaxEntries, string Name);
