using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>
/// What changes when a file's content can have changed: its inode, size, and modification and change times. The change
/// time cannot be set from user space, so a file rewritten with its old size and modification time still shows.
/// </summary>
public readonly record struct FileStamp(ulong Inode, ulong Size, long ModifiedSeconds, uint ModifiedNanoseconds, long ChangedSeconds, uint ChangedNanoseconds)
{
    /// <summary>The stamp of <paramref name="path"/> (following symlinks), or null when it cannot be read.</summary>
    public static unsafe FileStamp? Of(string path)
    {
        byte* buffer = stackalloc byte[256];
        if (Libc.Statx(Libc.AT_FDCWD, path, 0, Libc.STATX_BASIC, buffer) != 0)
            return null;
        // struct statx: u64 ino at 32, u64 size at 40, then timestamps {s64 sec, u32 nsec, pad} at 64 (atime), 80 (btime), 96 (ctime), 112 (mtime).
        var b = new ReadOnlySpan<byte>(buffer, 256);
        return new FileStamp(MemoryMarshal.Read<ulong>(b[32..]), MemoryMarshal.Read<ulong>(b[40..]),
            MemoryMarshal.Read<long>(b[112..]), MemoryMarshal.Read<uint>(b[120..]), MemoryMarshal.Read<long>(b[96..]), MemoryMarshal.Read<uint>(b[104..]));
    }
}
