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
