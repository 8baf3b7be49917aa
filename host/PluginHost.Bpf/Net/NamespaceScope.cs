using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>
/// Runs code inside a named network namespace (<c>/run/netns/NAME</c>, as made by <c>ip netns add</c>).
/// setns() changes only the calling thread, so the work runs on a dedicated thread that enters the
/// namespace first; sockets, ifindex lookups and tcx attachments made there belong to that namespace.
/// </summary>
public static class NamespaceScope
{
    /// <summary>Run <paramref name="work"/> in namespace <paramref name="name"/>, or right here when it is null.</summary>
    public static T Run<T>(string? name, Func<T> work)
    {
        if (string.IsNullOrEmpty(name))
            return work();

        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                Enter(name);
                result = work();
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
        }) { IsBackground = true, Name = $"netns {name}" };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }

    public static void Run(string? name, Action work) => Run<object?>(name, () => { work(); return null; });

    private static void Enter(string name)
    {
        string path = Path.Combine("/run/netns", name);
        int fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (fd < 0)
            throw new BpfException($"open network namespace {name}", Marshal.GetLastPInvokeError(),
                Marshal.GetLastPInvokeError() == 2 ? $"no {path}: create it with 'ip netns add {name}'" : null);
        using var handle = new SafeFd(fd);
        if (Libc.SetNs(handle.Fd, Libc.CLONE_NEWNET) < 0)
            throw new BpfException($"enter network namespace {name}", Marshal.GetLastPInvokeError());
    }
}
