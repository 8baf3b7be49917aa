using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>Who owns a file and its mode bits, as <c>lstat</c> sees it (a symlink itself, not its target).</summary>
/// <param name="Mode">Permission bits with setuid, setgid and sticky (07777).</param>
public readonly record struct FileOwner(int Uid, int Gid, int Mode, FileOwner.Kind Type)
{
    public enum Kind { Other, File, Directory, Symlink }

    public bool Sticky => (Mode & 0x200) != 0;

    /// <summary>The owner and mode of <paramref name="path"/>, not following a final symlink.</summary>
    public static unsafe FileOwner Of(string path)
    {
        byte* buffer = stackalloc byte[256];
        if (Libc.Statx(Libc.AT_FDCWD, path, Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC, buffer) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            string message = $"stat {path}: {Marshal.GetPInvokeErrorMessage(errno)}";
            throw errno == 2 ? new FileNotFoundException(message, path) : new IOException(message);
        }
        // struct statx: u32 mask, u32 blksize, u64 attributes, u32 nlink, u32 uid (20), u32 gid (24), u16 mode (28).
        var bytes = new ReadOnlySpan<byte>(buffer, 256);
        int uid = (int)MemoryMarshal.Read<uint>(bytes[20..]);
        int gid = (int)MemoryMarshal.Read<uint>(bytes[24..]);
        int mode = MemoryMarshal.Read<ushort>(bytes[28..]);
        var type = (mode & 0xF000) switch
        {
            0x8000 => Kind.File,
            0x4000 => Kind.Directory,
            0xA000 => Kind.Symlink,
            _ => Kind.Other,
        };
        return new FileOwner(uid, gid, mode & 0xFFF, type);
    }
}
