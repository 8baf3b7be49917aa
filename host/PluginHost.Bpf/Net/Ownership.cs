using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>Group ownership of the control socket.</summary>
public static class Ownership
{
    public static void SetGroup(string path, string group)
    {
        int gid = GroupId(group) ?? throw new HostException($"grant group {group} access to {path}: no such group in /etc/group");
        if (Libc.Chown(path, -1, gid) != 0)
            throw new BpfException($"change group of {path} to {group}", Marshal.GetLastPInvokeError());
    }

    /// <summary>The id of <paramref name="group"/> in /etc/group, or null when there is no such group.</summary>
    public static int? GroupId(string group)
    {
        foreach (var line in File.ReadLines("/etc/group"))
        {
            var fields = line.Split(':');
            if (fields.Length >= 3 && fields[0] == group && int.TryParse(fields[2], out int gid))
                return gid;
        }
        return null;
    }
}
