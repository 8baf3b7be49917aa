using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>Group ownership of the control socket.</summary>
public static class Ownership
{
    public static void SetGroup(string path, string group)
    {
        var line = File.ReadLines("/etc/group").FirstOrDefault(l => l.Split(':')[0] == group)
            ?? throw new HostException($"grant group {group} access to {path}: no such group in /etc/group");
        int gid = int.Parse(line.Split(':')[2]);
        if (Libc.Chown(path, -1, gid) != 0)
            throw new BpfException($"change group of {path} to {group}", Marshal.GetLastPInvokeError());
    }
}
