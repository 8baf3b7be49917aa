using System.Buffers.Binary;
using System.Text;
using PluginHost.Interop;

namespace PluginHost.Kernel;

/// <summary>BPF_OBJ_GET_INFO_BY_FD for programs, maps and links (only the leading fields we read).</summary>
internal static unsafe class ObjectInfo
{
    private static byte[] Get(SafeFd fd, string what)
    {
        var info = new byte[256];
        uint len = (uint)info.Length;
        fixed (byte* p = info)
        {
            int rc = Libbpf.bpf_obj_get_info_by_fd(fd.Fd, p, &len);
            if (rc < 0)
                throw new BpfException($"get {what} info", rc);
        }
        return info;
    }

    // struct bpf_prog_info / bpf_map_info / bpf_link_info: __u32 type; __u32 id; ...
    public static uint Id(SafeFd fd, string what) => BinaryPrimitives.ReadUInt32LittleEndian(Get(fd, what).AsSpan(4));

    public static MapInfo Map(SafeFd fd)
    {
        var b = Get(fd, "map").AsSpan();
        string name = Encoding.ASCII.GetString(b.Slice(24, 16)).TrimEnd('\0');
        return new MapInfo(U32(b, 0), U32(b, 4), U32(b, 8), U32(b, 12), U32(b, 16), name);
    }

    /// <summary>(link id, attached program id, tcx ifindex, attach type).</summary>
    public static TcxLinkInfo Link(SafeFd fd)
    {
        // struct bpf_link_info { __u32 type; __u32 id; __u32 prog_id; union { ... struct { __u32 ifindex; __u32 attach_type; } tcx; } }
        // the union is 8-aligned and starts at offset 16.
        var b = Get(fd, "link").AsSpan();
        return new TcxLinkInfo(U32(b, 4), U32(b, 8), U32(b, 16), U32(b, 20));
    }

    /// <summary>(JIT-compiled bytes, verified instructions): struct bpf_prog_info's jited_prog_len (offset 16) and
    /// xlated_prog_len (offset 20, 8 bytes an instruction), after type, id and the 8-byte tag.</summary>
    public static (uint JitedBytes, uint Instructions) ProgramSize(SafeFd fd)
    {
        var b = Get(fd, "program").AsSpan();
        return (U32(b, 16), U32(b, 20) / 8);
    }

    private static uint U32(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(b[offset..]);
}
