using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>Signals to a running host process.</summary>
internal static class HostSignals
{
    /// <summary>Ask the host with <paramref name="pid"/> to stop (SIGTERM).</summary>
    public static void RequestStop(int pid) => Send(pid, Libc.SIGTERM);

    /// <summary>Ask the host with <paramref name="pid"/> to re-read its configuration and plugins (SIGHUP).</summary>
    public static void Reload(int pid) => Send(pid, Libc.SIGHUP);

    private static void Send(int pid, int signal)
    {
        if (Libc.Kill(pid, signal) != 0)
            throw new BpfException($"signal host pid {pid}", Marshal.GetLastPInvokeError());
    }
}
