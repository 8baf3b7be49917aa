using PluginHost.Interop;

namespace PluginHost.Kernel;

/// <summary>The tc hook a link attaches to.</summary>
public enum TcxHook
{
    Ingress,
    Egress,
}

/// <summary>A tcx link as the kernel sees it.</summary>
public sealed record TcxLinkInfo(uint LinkId, uint ProgramId, uint Ifindex, uint AttachType)
{
    /// <summary>True when the link sits on this interface's hook.</summary>
    public bool IsOn(int ifindex, TcxHook hook) => Ifindex == (uint)ifindex && AttachType == (uint)TcxLink.AttachTypeOf(hook);
}

/// <summary>
/// A tcx link: attaches one program to an interface's ingress or egress hook. Created once, then
/// swapped atomically with <see cref="Update"/>; it stays attached while pinned.
/// </summary>
public sealed unsafe class TcxLink : IDisposable
{
    private TcxLink(SafeFd handle) => Handle = handle;

    internal SafeFd Handle { get; }

    /// <summary>
    /// Attach <paramref name="program"/> to <paramref name="ifindex"/>. The ifindex is read in the calling
    /// thread's network namespace.
    /// </summary>
    public static TcxLink Attach(BpfProgram program, int ifindex, TcxHook hook)
    {
        int type = AttachTypeOf(hook);
        int fd = Libbpf.bpf_link_create(program.Handle.Fd, ifindex, type, null);
        if (fd < 0)
            // An errno (EINVAL above all) has many causes: only the probe says whether this kernel lacks tcx.
            throw new BpfException($"attach program {program.Name} to ifindex {ifindex} {hook.ToString().ToLowerInvariant()} (tcx)", fd,
                Features.TcxMissingRemedy);
        return new TcxLink(new SafeFd(fd));
    }

    public static TcxLink OpenPinned(string path) => new(BpfFs.OpenPinned(path, "link"));

    public void Pin(string path) => BpfFs.Pin(Handle, path);

    /// <summary>
    /// Swap the attached program in one step. With <paramref name="expected"/>, the kernel refuses the swap
    /// (compare-and-swap) unless that program is the one attached.
    /// </summary>
    public void Update(BpfProgram program, BpfProgram? expected = null)
    {
        var opts = new Libbpf.bpf_link_update_opts
        {
            sz = (nuint)sizeof(Libbpf.bpf_link_update_opts),
            flags = expected is null ? 0 : Libbpf.BPF_F_REPLACE,
            old_prog_fd = expected is null ? 0 : (uint)expected.Handle.Fd,
        };
        int rc = Libbpf.bpf_link_update(Handle.Fd, program.Handle.Fd, &opts);
        if (rc < 0)
            throw new BpfException($"update link to program {program.Name}", rc,
                rc == -1 && expected is not null ? "the attached program is not the expected one" : null);
    }

    /// <summary>Link id, attached program id, interface index and attach type as the kernel sees them.</summary>
    public TcxLinkInfo Info => ObjectInfo.Link(Handle);

    internal static int AttachTypeOf(TcxHook hook) => hook == TcxHook.Ingress ? Libbpf.BPF_TCX_INGRESS : Libbpf.BPF_TCX_EGRESS;

    public void Dispose() => Handle.Dispose();
}
