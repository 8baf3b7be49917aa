using System.Text;
using Microsoft.Win32.SafeHandles;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>
/// One host per runtime directory: an exclusive advisory lock (flock) on <c>RUNTIME/pluginhost.lock</c>, held for the
/// host's life, with the holder's pid written in it. The kernel drops the lock when the process goes, however it goes,
/// so a file left behind never blocks the next host. The file is never removed (unlinking a lock file lets two hosts
/// each lock a different one); on release it is emptied.
/// </summary>
public sealed class RuntimeLock : IDisposable
{
    public const string FileName = "pluginhost.lock";

    // A holder writes its pid right after locking: a reader that finds the lock held waits this long for the pid.
    private static readonly TimeSpan PidPatience = TimeSpan.FromSeconds(1);

    private readonly SafeFileHandle _file;

    private RuntimeLock(SafeFileHandle file, string path)
    {
        _file = file;
        Path = path;
    }

    /// <summary>The lock file.</summary>
    public string Path { get; }

    public static string PathIn(string runtimeDirectory) => System.IO.Path.Combine(runtimeDirectory, FileName);

    /// <summary>
    /// Take the lock of <paramref name="runtimeDirectory"/> (created if missing) and write this process's pid in it; null when
    /// another process holds it, with its pid in <paramref name="holder"/> (null if it has not written one).
    /// </summary>
    public static RuntimeLock? TryAcquire(string runtimeDirectory, out int? holder)
    {
        Directory.CreateDirectory(runtimeDirectory);
        string path = PathIn(runtimeDirectory);
        var file = FileLocks.OpenOrCreate(path, "runtime lock");
        try
        {
            if (!FileLocks.TryLockExclusive(file, $"runtime lock {path}"))
            {
                holder = ReadHolder(file);
                file.Dispose();
                return null;
            }
            byte[] pid = Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n");
            RandomAccess.SetLength(file, 0);
            RandomAccess.Write(file, pid, 0);
            holder = Environment.ProcessId;
            return new RuntimeLock(file, path);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The pid written in the lock file of <paramref name="runtimeDirectory"/>, whether or not anyone holds it.</summary>
    public static int? ReadPid(string runtimeDirectory)
    {
        string path = PathIn(runtimeDirectory);
        if (!File.Exists(path))
            return null;
        using var file = FileLocks.OpenOrCreate(path, "runtime lock");
        return ParsePid(file);
    }

    private static int? ReadHolder(SafeFileHandle file)
    {
        var deadline = DateTime.UtcNow + PidPatience;
        while (true)
        {
            int? pid = ParsePid(file);
            if (pid is not null || DateTime.UtcNow >= deadline)
                return pid;
            Thread.Sleep(10);
        }
    }

    private static int? ParsePid(SafeFileHandle file)
    {
        var buffer = new byte[32];
        int read = RandomAccess.Read(file, buffer, 0);
        return int.TryParse(Encoding.ASCII.GetString(buffer, 0, read).Trim(), out int pid) && pid > 0 ? pid : null;
    }

    /// <summary>Empty the file (no stale pid for a reader) and release the lock.</summary>
    public void Dispose()
    {
        if (_file.IsClosed)
            return;
        try
        {
            RandomAccess.SetLength(_file, 0);
        }
        catch (IOException)
        {
            // Best effort: the lock goes with the descriptor either way.
        }
        _file.Dispose();
    }
}
