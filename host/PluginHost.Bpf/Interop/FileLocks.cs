using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace PluginHost.Interop;

/// <summary>
/// flock(2) on a file of our own. .NET's FileStream takes an flock too, but a shared one on every open (so even reading a
/// locked file fails) and none at all when DOTNET_SYSTEM_IO_DISABLEFILELOCKING is set; this is explicit.
/// </summary>
internal static class FileLocks
{
    /// <summary>Open <paramref name="path"/> for reading and writing, creating it (0644), close-on-exec (clang must not inherit it).</summary>
    public static SafeFileHandle OpenOrCreate(string path, string what)
    {
        int fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0b110_100_100);
        if (fd < 0)
            throw new BpfException($"open {what} {path}", Marshal.GetLastPInvokeError());
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Take the exclusive lock without waiting: false when another open file holds it (this process's included).</summary>
    public static bool TryLockExclusive(SafeFileHandle file, string what)
    {
        bool added = false;
        file.DangerousAddRef(ref added);
        try
        {
            if (Libc.Flock((int)file.DangerousGetHandle(), Libc.LOCK_EX | Libc.LOCK_NB) == 0)
                return true;
            int errno = Marshal.GetLastPInvokeError();
            return errno == Libc.EWOULDBLOCK ? false : throw new BpfException($"lock {what}", errno);
        }
        finally
        {
            if (added)
                file.DangerousRelease();
        }
    }
}
