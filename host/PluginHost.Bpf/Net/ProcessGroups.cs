using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>Process groups of helper processes the host starts (clang): killed as a whole.</summary>
public static class ProcessGroups
{
    /// <summary>SIGKILL every process of group <paramref name="pgid"/>; false when the group no longer exists.</summary>
    public static bool Kill(int pgid)
    {
        if (pgid <= 1)
            throw new ArgumentOutOfRangeException(nameof(pgid), pgid, "not a helper's process group");
        if (Libc.Kill(-pgid, Libc.SIGKILL) == 0)
            return true;
        int errno = Marshal.GetLastPInvokeError();
        return errno == Libc.ESRCH ? false : throw new BpfException($"kill process group {pgid}", errno);
    }

    /// <summary>The process group of <paramref name="pid"/> (from <c>/proc/PID/stat</c>), or null when it has gone.</summary>
    public static int? Of(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so count from the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[2]);
    }
}
