using System.Runtime.InteropServices;

namespace PluginHost.Interop;

/// <summary>The few libc calls the host needs. Raw fds never leave this folder except inside a SafeHandle.</summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    public const int CLONE_NEWNET = 0x40000000;
    public const int F_DUPFD_CLOEXEC = 1030;
    public const int O_RDONLY = 0;
    public const int O_RDWR = 2;
    public const int O_CREAT = 0x40;
    public const int O_CLOEXEC = 0x80000;
    public const int AF_INET = 2;
    public const int SOCK_DGRAM = 2;
    public const ulong SIOCGIFFLAGS = 0x8913;
    public const short IFF_UP = 0x1;
    public const int ENXIO = 6;
    public const int EINVAL = 22;
    public const int ENODEV = 19;
    public const int EWOULDBLOCK = 11;
    public const int LOCK_EX = 2;
    public const int LOCK_NB = 4;

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int cmd, int arg);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "flock", SetLastError = true)]
    public static partial int Flock(int fd, int operation);

    [LibraryImport(Lib, EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nstype);

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, ulong request, void* arg);

    [LibraryImport(Lib, EntryPoint = "if_nametoindex", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint IfNameToIndex(string name);

    [LibraryImport(Lib, EntryPoint = "if_indextoname", SetLastError = true)]
    public static partial nint IfIndexToName(uint index, byte* name);

    // Netlink (rtnetlink link and address events).
    public const int AF_NETLINK = 16;
    public const int SOCK_RAW = 3;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int NETLINK_ROUTE = 0;
    public const int SOL_SOCKET = 1;
    public const int SO_RCVBUF = 8;
    public const int SO_RCVTIMEO = 20;
    public const int SOL_NETLINK = 270;
    public const int NETLINK_NO_ENOBUFS = 5;
    public const int EAGAIN = 11;
    public const int EINTR = 4;
    public const int ENOBUFS = 105;
    public const short IFF_RUNNING = 0x40;

    [LibraryImport(Lib, EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, void* address, int length);

    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, void* value, int length);

    [LibraryImport(Lib, EntryPoint = "send", SetLastError = true)]
    public static partial nint Send(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport(Lib, EntryPoint = "recv", SetLastError = true)]
    public static partial nint Recv(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport(Lib, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    public const int SIGHUP = 1;
    public const int SIGTERM = 15;
    public const int SIGKILL = 9;
    public const int ESRCH = 3;

    [LibraryImport(Lib, EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Chown(string path, int owner, int group);

    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const uint STATX_BASIC = 0x7ff; // type, mode, nlink, uid, gid, times, ino, size, blocks

    /// <summary><c>statx(2)</c>: the same layout on every architecture (unlike <c>struct stat</c>); <paramref name="buffer"/> is 256 bytes.</summary>
    [LibraryImport(Lib, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary><c>statfs(2)</c>: <paramref name="buffer"/> is 120 bytes; the filesystem's magic number (a long) comes first on every Linux architecture.</summary>
    [LibraryImport(Lib, EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int StatFs(string path, byte* buffer);

    public const long BPF_FS_MAGIC = 0xcafe4a11;

    [LibraryImport(Lib, EntryPoint = "strerror")]
    public static partial nint StrError(int errnum);

    [LibraryImport(Lib, EntryPoint = "vsnprintf")]
    public static partial int VsnPrintf(byte* buffer, nuint size, byte* format, nint args);

    /// <summary>The C library's text for an errno value.</summary>
    public static string ErrorText(int errno) => Marshal.PtrToStringUTF8(StrError(errno)) ?? $"errno {errno}";
}
