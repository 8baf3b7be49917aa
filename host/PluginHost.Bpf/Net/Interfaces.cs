using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>Interface lookups in the calling thread's network namespace.</summary>
public static unsafe class Interfaces
{
    /// <summary>Resolve a name to its ifindex; false with the reason when it is missing or down.</summary>
    public static bool TryResolve(string name, out int ifindex, out string error)
    {
        ifindex = 0;
        if (name.Length is 0 or > 15 || name.Contains('/') || name.Any(char.IsWhiteSpace))
        {
            error = $"invalid interface name '{name}'";
            return false;
        }
        uint index = Libc.IfNameToIndex(name);
        if (index == 0)
        {
            error = $"interface '{name}' does not exist";
            return false;
        }
        if (!IsUp(name))
        {
            error = $"interface '{name}' is down (ip link set {name} up)";
            return false;
        }
        ifindex = (int)index;
        error = "";
        return true;
    }

    private static bool IsUp(string name)
    {
        int fd = Libc.Socket(Libc.AF_INET, Libc.SOCK_DGRAM, 0);
        if (fd < 0)
            throw new BpfException("open socket for interface flags", Marshal.GetLastPInvokeError());
        using var socket = new SafeFd(fd);
        // struct ifreq: char ifr_name[16]; union { short ifr_flags; ... } (40 bytes in all)
        byte* ifreq = stackalloc byte[40];
        new Span<byte>(ifreq, 40).Clear();
        System.Text.Encoding.ASCII.GetBytes(name, new Span<byte>(ifreq, 15));
        if (Libc.Ioctl(socket.Fd, Libc.SIOCGIFFLAGS, ifreq) < 0)
            return false;
        short flags = *(short*)(ifreq + 16);
        return (flags & Libc.IFF_UP) != 0;
    }
}
