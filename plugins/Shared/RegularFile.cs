using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// A file named in settings, opened for reading as a regular file and nothing else. A FIFO named as a routes file
/// blocked the host's single writer in open(2) forever; a device never ends. So the file is opened with O_NONBLOCK (an
/// open that cannot wait), its type and size are checked on the open descriptor (no race with a rename between check
/// and open), and only then is it read. (.NET's FileInfo reports a FIFO as a normal file of length 0, hence libc.)
/// </summary>
internal static partial class RegularFile
{
    private const int ORdOnly = 0, ONonBlock = 0x800, OCloExec = 0x80000; // Linux, x86-64 and arm64 alike
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1, StatxSize = 0x200;
    private const int ModeOffset = 28, SizeOffset = 40; // struct statx: the same layout on every architecture

    /// <summary>
    /// Open <paramref name="path"/> for reading; <see cref="IOException"/> naming <paramref name="what"/> and the path when it
    /// is missing, not a regular file or larger than <paramref name="maxBytes"/>. The message never holds the file's contents.
    /// </summary>
    /// <param name="remedy">How to raise the limit, for the message ("raise it with routesFileMaxBytes").</param>
    public static FileStream Open(string path, string what, long maxBytes, string remedy)
    {
        int fd = OpenRaw(path, ORdOnly | ONonBlock | OCloExec);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException(errno switch
            {
                2 => $"{what} '{path}' does not exist",
                13 => $"{what} '{path}': permission denied",
                _ => $"open {what} '{path}': {Marshal.GetPInvokeErrorMessage(errno)}",
            });
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            var (mode, size) = Stat(handle, path, what);
            if ((mode & 0xF000) != 0x8000)
                throw new IOException($"{what} '{path}' is {Kind(mode)}, not a regular file");
            if (size > maxBytes)
                throw new IOException($"{what} '{path}' is {size:N0} bytes, more than the limit of {maxBytes:N0} ({remedy})");
            return new FileStream(handle, FileAccess.Read, bufferSize: 0);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static unsafe (int Mode, long Size) Stat(SafeFileHandle handle, string path, string what)
    {
        byte* buffer = stackalloc byte[256];
        if (Statx(handle, "", AtEmptyPath, StatxType | StatxSize, buffer) != 0)
            throw new IOException($"stat {what} '{path}': {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        return (*(ushort*)(buffer + ModeOffset), (long)*(ulong*)(buffer + SizeOffset));
    }

    private static string Kind(int mode) => (mode & 0xF000) switch
    {
        0x1000 => "a FIFO",
        0x2000 => "a character device",
        0x4000 => "a directory",
        0x6000 => "a block device",
        0xC000 => "a socket",
        _ => "not a file",
    };

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenRaw(string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Statx(SafeFileHandle dirfd, string path, int flags, uint mask, byte* buffer);
}
