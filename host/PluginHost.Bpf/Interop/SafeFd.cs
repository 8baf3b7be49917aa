using System.Runtime.InteropServices;

namespace PluginHost.Interop;

/// <summary>Owns one kernel file descriptor (a BPF program, map, link, a namespace or a socket).</summary>
internal sealed class SafeFd : SafeHandle
{
    public SafeFd() : base(-1, ownsHandle: true) { }

    internal SafeFd(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>The raw descriptor, for calls inside Interop/ and the kernel wrappers.</summary>
    internal int Fd => (int)handle;

    /// <summary>Take ownership of a duplicate of an fd someone else owns (libbpf's, say).</summary>
    internal static SafeFd Duplicate(int fd, string what)
    {
        int dup = Libc.Fcntl(fd, Libc.F_DUPFD_CLOEXEC, 3);
        if (dup < 0)
            throw new BpfException($"duplicate fd of {what}", Marshal.GetLastPInvokeError());
        return new SafeFd(dup);
    }

    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}
