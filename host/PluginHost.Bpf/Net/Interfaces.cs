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

    /// <summary>
    /// Look an interface up for routing out of it: whether it exists, and whether it can carry packets now (up, with
    /// its lower layer up: a veth whose peer is down, or a cable pulled, cannot). Invalid names are reported as such.
    /// </summary>
    public static InterfaceLookup Lookup(string name)
    {
        if (name.Length is 0 or > 15 || name.Contains('/') || name.Any(char.IsWhiteSpace))
            return new InterfaceLookup(name, 0, InterfaceCondition.Invalid, $"invalid interface name '{name}'");
        uint index = Libc.IfNameToIndex(name);
        if (index == 0)
            return new InterfaceLookup(name, 0, InterfaceCondition.Missing, $"interface '{name}' does not exist");
        short flags = Flags(name);
        if ((flags & Libc.IFF_UP) == 0)
            return new InterfaceLookup(name, (int)index, InterfaceCondition.Down, $"interface '{name}' is down");
        if ((flags & Libc.IFF_RUNNING) == 0)
            return new InterfaceLookup(name, (int)index, InterfaceCondition.Down, $"interface '{name}' has no carrier");
        return new InterfaceLookup(name, (int)index, InterfaceCondition.Up, null);
    }

    /// <summary>The name of interface <paramref name="ifindex"/> in the calling thread's namespace, or null when there is none.</summary>
    public static string? NameOf(int ifindex)
    {
        byte* buffer = stackalloc byte[16];
        if (ifindex <= 0 || Libc.IfIndexToName((uint)ifindex, buffer) == 0)
            return null;
        return System.Text.Encoding.ASCII.GetString(buffer, new ReadOnlySpan<byte>(buffer, 16).IndexOf((byte)0) is var n and >= 0 ? n : 16);
    }

    private static bool IsUp(string name) => (Flags(name) & Libc.IFF_UP) != 0;

    // SIOCGIFFLAGS; 0 when the interface vanished meanwhile.
    private static short Flags(string name)
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
            return 0;
        return *(short*)(ifreq + 16);
    }
}

/// <summary>What an interface can do for a route out of it.</summary>
public enum InterfaceCondition
{
    /// <summary>Up, with its lower layer up.</summary>
    Up,
    /// <summary>Exists, but is down or has no carrier.</summary>
    Down,
    /// <summary>No interface of that name.</summary>
    Missing,
    /// <summary>Not a possible interface name.</summary>
    Invalid,
}

/// <summary>An interface looked up by name; <see cref="Ifindex"/> is 0 when it does not exist.</summary>
/// <param name="Problem">Why it cannot carry packets now, or null when it is up.</param>
public sealed record InterfaceLookup(string Name, int Ifindex, InterfaceCondition Condition, string? Problem);
