using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Kernel;

/// <summary>A compiled BPF ELF object opened with libbpf, loaded into the kernel by <see cref="Load"/>.</summary>
public sealed unsafe class BpfObject : IDisposable
{
    private const int LogSize = 4 << 20;
    private readonly SafeBpfObjectHandle _handle;
    private readonly Dictionary<string, nint> _logBuffers = [];

    // Looked up once at open: libbpf renames a map to the reused map's kernel name.
    private readonly Dictionary<string, nint> _maps = [];

    private BpfObject(SafeBpfObjectHandle handle)
    {
        _handle = handle;
        for (nint m = Libbpf.bpf_object__next_map(handle, 0); m != 0; m = Libbpf.bpf_object__next_map(handle, m))
            _maps[Marshal.PtrToStringUTF8(Libbpf.bpf_map__name(m))!] = m;
    }

    /// <summary>
    /// Set the initial contents of a read-only data section (e.g. <c>.rodata.ph</c>) before <see cref="Load"/>.
    /// </summary>
    public void SetReadOnlyData(string section, ReadOnlySpan<byte> data)
    {
        nint map = FindMap(section);
        fixed (byte* p = data)
        {
            int rc = Libbpf.bpf_map__set_initial_value(map, p, (nuint)data.Length);
            if (rc < 0)
                throw new BpfException($"set initial value of {section} ({data.Length} bytes)", rc);
        }
    }

    /// <summary>Open an object file (nothing reaches the kernel yet).</summary>
    public static BpfObject Open(string path)
    {
        LibbpfMessages.Install();
        nint raw = Libbpf.bpf_object__open_file(path, null);
        if (raw == 0)
            throw new BpfException($"open BPF object {path}", Marshal.GetLastPInvokeError());
        var handle = new SafeBpfObjectHandle();
        Marshal.InitHandle(handle, raw);
        return new BpfObject(handle);
    }

    /// <summary>
    /// Reuse an existing map (pinned by an earlier generation) instead of creating a new one.
    /// Call before <see cref="Load"/>.
    /// </summary>
    public void ReuseMap(string name, BpfMap existing)
    {
        nint map = FindMap(name);
        int rc = Libbpf.bpf_map__reuse_fd(map, existing.Handle.Fd);
        if (rc < 0)
            throw new BpfException($"reuse map {name}", rc);
    }

    /// <summary>Create the maps and load every program; a verifier rejection names the program and keeps its log.</summary>
    public void Load()
    {
        for (nint p = Libbpf.bpf_object__next_program(_handle, 0); p != 0; p = Libbpf.bpf_object__next_program(_handle, p))
        {
            // Not zeroed: libbpf writes a log only for a program the kernel rejected, so an empty first byte
            // is enough to tell, and untouched pages cost nothing (4 MiB per program per load otherwise).
            nint buffer = (nint)NativeMemory.Alloc(LogSize);
            *(byte*)buffer = 0;
            _logBuffers[Marshal.PtrToStringUTF8(Libbpf.bpf_program__name(p))!] = buffer;
            Libbpf.bpf_program__set_log_buf(p, (byte*)buffer, LogSize);
        }
        try
        {
            LibbpfMessages.Take();
            int rc = Libbpf.bpf_object__load(_handle);
            if (rc < 0)
                throw LoadFailure(rc);
        }
        finally
        {
            foreach (var buffer in _logBuffers.Values)
                NativeMemory.Free((void*)buffer);
            _logBuffers.Clear();
        }
    }

    private Exception LoadFailure(int rc)
    {
        // libbpf fills the log buffer only for the program the kernel rejected.
        foreach (var (name, buffer) in _logBuffers)
        {
            string log = Marshal.PtrToStringUTF8(buffer) ?? "";
            if (log.Length > 0)
                return new ProgramLoadException(name, log, -rc);
        }
        string libbpfSays = string.Join("; ", LibbpfMessages.Take());
        return new BpfException($"load BPF object: {Libc.ErrorText(-rc).ToLowerInvariant()}" +
            (libbpfSays.Length > 0 ? $" (libbpf: {libbpfSays})" : ""));
    }

    /// <summary>A loaded program; the returned handle is independent of this object's lifetime.</summary>
    public BpfProgram Program(string name)
    {
        nint prog = Libbpf.bpf_object__find_program_by_name(_handle, name);
        if (prog == 0)
            throw new BpfException($"find program {name}: no such program in the object");
        int fd = Libbpf.bpf_program__fd(prog);
        if (fd < 0)
            throw new BpfException($"find program {name}: not loaded");
        return new BpfProgram(name, SafeFd.Duplicate(fd, $"program {name}"));
    }

    /// <summary>A created map; the returned handle is independent of this object's lifetime.</summary>
    public BpfMap Map(string name)
    {
        int fd = Libbpf.bpf_map__fd(FindMap(name));
        if (fd < 0)
            throw new BpfException($"find map {name}: not created");
        return new BpfMap(name, SafeFd.Duplicate(fd, $"map {name}"));
    }

    private nint FindMap(string name)
    {
        if (_maps.TryGetValue(name, out nint map))
            return map;
        // Internal maps (.rodata.ph) are found by section name.
        map = Libbpf.bpf_object__find_map_by_name(_handle, name);
        return map != 0 ? map : throw new BpfException($"find map {name}: no such map in the object");
    }

    public void Dispose() => _handle.Dispose();
}

/// <summary>The kernel refused a program; <see cref="Log"/> holds the whole verifier log.</summary>
public sealed class ProgramLoadException : BpfException
{
    public ProgramLoadException(string program, string log, int errno)
        : base($"load program {program}: verifier rejected it ({Libc.ErrorText(errno).ToLowerInvariant()}):\n{Tail(log, 12)}")
    {
        Program = program;
        Log = log;
    }

    /// <summary>The BPF program's name in the object.</summary>
    public string Program { get; }

    /// <summary>The whole verifier log.</summary>
    public string Log { get; }

    private static string Tail(string log, int lines)
    {
        var all = log.TrimEnd().Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)).Select(l => "  " + l));
    }
}
