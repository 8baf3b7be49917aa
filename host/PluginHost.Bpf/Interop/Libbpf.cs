using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace PluginHost.Interop;

/// <summary>
/// Native libbpf (Debian's libbpf1, 1.1.x). libbpf ≥ 1.0 returns -errno from int functions and
/// NULL with errno set from pointer functions.
/// </summary>
internal static unsafe partial class Libbpf
{
    private const string Lib = "libbpf.so.1";

    // enum bpf_attach_type values the 6.1 uapi headers lack.
    public const int BPF_PROG_TYPE_SCHED_CLS = 3;
    public const int BPF_TCX_INGRESS = 46;
    public const int BPF_TCX_EGRESS = 47;
    public const uint BPF_F_REPLACE = 1u << 2;
    public const ulong BPF_ANY = 0;
    public const ulong BPF_NOEXIST = 1;

    [StructLayout(LayoutKind.Sequential)]
    public struct bpf_test_run_opts
    {
        public nuint sz;
        public void* data_in;
        public void* data_out;
        public uint data_size_in;
        public uint data_size_out;
        public void* ctx_in;
        public void* ctx_out;
        public uint ctx_size_in;
        public uint ctx_size_out;
        public uint retval;
        public int repeat;
        public uint duration;
        public uint flags;
        public uint cpu;
        public uint batch_size;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct bpf_link_update_opts
    {
        public nuint sz;
        public uint flags;
        public uint old_prog_fd;
    }

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint bpf_object__open_file(string path, void* opts);

    [LibraryImport(Lib)]
    public static partial int bpf_object__load(SafeBpfObjectHandle obj);

    [LibraryImport(Lib)]
    public static partial void bpf_object__close(nint obj);

    [LibraryImport(Lib)]
    public static partial nint bpf_object__next_program(SafeBpfObjectHandle obj, nint prev);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint bpf_object__find_program_by_name(SafeBpfObjectHandle obj, string name);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint bpf_object__find_map_by_name(SafeBpfObjectHandle obj, string name);

    [LibraryImport(Lib)]
    public static partial nint bpf_program__name(nint prog);

    [LibraryImport(Lib)]
    public static partial int bpf_program__fd(nint prog);

    [LibraryImport(Lib)]
    public static partial int bpf_program__set_log_buf(nint prog, byte* logBuf, nuint logSize);

    [LibraryImport(Lib)]
    public static partial int bpf_map__fd(nint map);

    [LibraryImport(Lib)]
    public static partial int bpf_map__reuse_fd(nint map, int fd);

    [LibraryImport(Lib)]
    public static partial int bpf_map__set_initial_value(nint map, void* data, nuint size);

    [LibraryImport(Lib)]
    public static partial nint bpf_object__next_map(SafeBpfObjectHandle obj, nint prev);

    [LibraryImport(Lib)]
    public static partial nint bpf_map__name(nint map);

    public const int BPF_MAP_TYPE_ARRAY = 2;
    public const int BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;

    /// <summary>libbpf 1.0's <c>struct bpf_map_create_opts</c> (later fields left out: <c>sz</c> tells libbpf where it ends).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct bpf_map_create_opts
    {
        public nuint sz;
        public uint btf_fd;
        public uint btf_key_type_id;
        public uint btf_value_type_id;
        public uint btf_vmlinux_value_type_id;
        public uint inner_map_fd;
        public uint map_flags;
        public ulong map_extra;
        public uint numa_node;
        public uint map_ifindex;
    }

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int bpf_map_create(int mapType, string? mapName, uint keySize, uint valueSize, uint maxEntries, bpf_map_create_opts* opts);

    [LibraryImport(Lib)]
    public static partial int bpf_map_update_elem(int fd, void* key, void* value, ulong flags);

    [LibraryImport(Lib)]
    public static partial int bpf_map_lookup_elem(int fd, void* key, void* value);

    [StructLayout(LayoutKind.Sequential)]
    public struct bpf_map_batch_opts
    {
        public nuint sz;
        public ulong elem_flags;
        public ulong flags;
    }

    [LibraryImport(Lib)]
    public static partial int bpf_map_update_batch(int fd, void* keys, void* values, uint* count, bpf_map_batch_opts* opts);

    [LibraryImport(Lib)]
    public static partial int bpf_map_delete_elem(int fd, void* key);

    [LibraryImport(Lib)]
    public static partial int bpf_map_get_next_key(int fd, void* key, void* nextKey);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int bpf_obj_pin(int fd, string path);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int bpf_obj_get(string path);

    [LibraryImport(Lib)]
    public static partial int bpf_obj_get_info_by_fd(int fd, void* info, uint* infoLen);

    /// <summary>Load a program from raw instructions (<c>struct bpf_insn</c>, 8 bytes each); the feature probes use it.</summary>
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int bpf_prog_load(int progType, string progName, string license, ulong* insns, nuint insnCount, void* opts);

    [LibraryImport(Lib)]
    public static partial int bpf_link_create(int progFd, int targetFd, int attachType, void* opts);

    [LibraryImport(Lib)]
    public static partial int bpf_link_update(int linkFd, int newProgFd, bpf_link_update_opts* opts);

    [LibraryImport(Lib)]
    public static partial int bpf_prog_test_run_opts(int progFd, bpf_test_run_opts* opts);

    [LibraryImport(Lib)]
    public static partial int libbpf_num_possible_cpus();

    [LibraryImport(Lib)]
    public static partial nint libbpf_set_print(delegate* unmanaged[Cdecl]<int, byte*, nint, int> fn);
}

/// <summary>Owns a libbpf <c>struct bpf_object *</c>.</summary>
internal sealed class SafeBpfObjectHandle : SafeHandle
{
    public SafeBpfObjectHandle() : base(0, ownsHandle: true) { }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        Libbpf.bpf_object__close(handle);
        return true;
    }
}

/// <summary>
/// Routes libbpf's own messages (warnings, "failed to ..." lines) to the host instead of stderr,
/// so an error can quote them and the console stays clean.
/// </summary>
internal static unsafe class LibbpfMessages
{
    private static int _installed;

    [ThreadStatic] private static List<string>? _captured;

    /// <summary>Install the callback (once per process).</summary>
    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 0)
            Libbpf.libbpf_set_print(&OnMessage);
    }

    /// <summary>Warnings libbpf printed on this thread since the last call.</summary>
    public static IReadOnlyList<string> Take()
    {
        var taken = _captured ?? [];
        _captured = null;
        return taken;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnMessage(int level, byte* format, nint args)
    {
        const int LIBBPF_WARN = 0;
        if (level != LIBBPF_WARN)
            return 0;
        byte* buffer = stackalloc byte[1024];
        int n = Libc.VsnPrintf(buffer, 1024, format, args);
        if (n <= 0)
            return 0;
        string line = Marshal.PtrToStringUTF8((nint)buffer)!.TrimEnd();
        (_captured ??= []).Add(line);
        return 0;
    }
}
