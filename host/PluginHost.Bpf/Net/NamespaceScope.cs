using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>
/// Runs code inside a named network namespace (<c>/run/netns/NAME</c>, as made by <c>ip netns add</c>).
/// setns() changes only the calling thread, so the work runs on a thread that entered the namespace
/// (<see cref="NamespaceThreads"/>); sockets, ifindex lookups and tcx attachments made there belong to that namespace.
/// </summary>
public static class NamespaceScope
{
    /// <summary>Run <paramref name="work"/> in namespace <paramref name="name"/>, or right here when it is null.</summary>
    public static T Run<T>(string? name, Func<T> work)
    {
        if (string.IsNullOrEmpty(name) || name == _current)
            return work();

        NamespaceThreads.TryRun(name, work, Timeout.InfiniteTimeSpan, out T result);
        return result;
    }

    // The namespace this thread entered (null: the one it started in): work there that asks for it again runs inline.
    [ThreadStatic]
    private static string? _current;

    public static void Run(string? name, Action work) => Run<object?>(name, () => { work(); return null; });

    /// <summary>Move the calling thread into namespace <paramref name="name"/> (null: the process's own, its first thread's).</summary>
    internal static void Enter(string? name)
    {
        string path = name is null ? "/proc/self/ns/net" : Path.Combine("/run/netns", name);
        int fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (fd < 0)
            throw new BpfException($"open network namespace {name}", Marshal.GetLastPInvokeError(),
                Marshal.GetLastPInvokeError() == 2 && name is not null ? $"no {path}: create it with 'ip netns add {name}'" : null);
        using var handle = new SafeFd(fd);
        if (Libc.SetNs(handle.Fd, Libc.CLONE_NEWNET) < 0)
            throw new BpfException($"enter network namespace {name}", Marshal.GetLastPInvokeError());
        _current = name;
    }
}
