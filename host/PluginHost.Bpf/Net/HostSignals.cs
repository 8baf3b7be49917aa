using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>Signals to a running host process.</summary>
internal static class HostSignals
{
    /// <summary>Ask the host with <paramref name="pid"/> to stop (SIGTERM).</summary>
    public static void RequestStop(int pid)
    {
        if (Libc.Kill(pid, Libc.SIGTERM) != 0)
            throw new BpfException($"signal host pid {pid}", Marshal.GetLastPInvokeError());
    }
}
