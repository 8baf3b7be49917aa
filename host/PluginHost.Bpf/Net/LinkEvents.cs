using System.Buffers.Binary;
using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>What happened to an interface, as rtnetlink announced it.</summary>
public enum LinkEventKind
{
    /// <summary>RTM_NEWLINK: created, renamed, set up or down, carrier changed.</summary>
    LinkChanged,
    /// <summary>RTM_DELLINK: deleted (or moved to another namespace).</summary>
    LinkRemoved,
    /// <summary>RTM_NEWADDR.</summary>
    AddressAdded,
    /// <summary>RTM_DELADDR.</summary>
    AddressRemoved,
    /// <summary>The kernel dropped events (the socket's buffer overflowed): anything may have changed.</summary>
    Overrun,
}

/// <summary>One event; <see cref="Name"/> is null for address events without a label (IPv6) and for an overrun.</summary>
/// <param name="Up">For link events: IFF_UP and IFF_RUNNING both set.</param>
public sealed record LinkEvent(LinkEventKind Kind, int Ifindex, string? Name, bool Up = false)
{
    public override string ToString() => Kind switch
    {
        LinkEventKind.LinkChanged => $"{Name ?? $"ifindex {Ifindex}"} {(Up ? "up" : "down")}",
        LinkEventKind.LinkRemoved => $"{Name ?? $"ifindex {Ifindex}"} removed",
        LinkEventKind.AddressAdded => $"address added on {Name ?? $"ifindex {Ifindex}"}",
        LinkEventKind.AddressRemoved => $"address removed from {Name ?? $"ifindex {Ifindex}"}",
        _ => "events lost",
    };
}

/// <summary>Reads rtnetlink messages (<c>struct nlmsghdr</c>, <c>ifinfomsg</c>, <c>ifaddrmsg</c>, attributes); pure.</summary>
internal static class Rtnetlink
{
    public const ushort RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_NEWADDR = 20, RTM_DELADDR = 21;
    public const ushort NLMSG_NOOP = 1, NLMSG_ERROR = 2, NLMSG_DONE = 3, NLMSG_OVERRUN = 4;
    public const ushort IFLA_IFNAME = 3, IFA_LABEL = 3;
    public const int RTMGRP_LINK = 0x1, RTMGRP_IPV4_IFADDR = 0x10, RTMGRP_IPV6_IFADDR = 0x100;
    private const int HeaderBytes = 16, IfInfoBytes = 16, IfAddrBytes = 8;
    private const uint IFF_UP = 0x1, IFF_RUNNING = 0x40;

    /// <summary>One message of a datagram: its type, its sequence number and its body (after <c>struct nlmsghdr</c>).</summary>
    public delegate void MessageVisitor(ushort type, uint seq, ReadOnlySpan<byte> body);

    /// <summary>Visit each message of a datagram (several, each 4-byte aligned); a truncated one ends the datagram.</summary>
    public static void ForEach(ReadOnlySpan<byte> datagram, MessageVisitor visit)
    {
        while (datagram.Length >= HeaderBytes)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(datagram);
            if (length < HeaderBytes || length > datagram.Length)
                break;
            visit(BinaryPrimitives.ReadUInt16LittleEndian(datagram[4..]), BinaryPrimitives.ReadUInt32LittleEndian(datagram[8..]), datagram[HeaderBytes..length]);
            datagram = datagram[Math.Min(datagram.Length, Align(length))..];
        }
    }

    /// <summary>The events in one datagram; unknown messages are skipped, a truncated one ends the datagram.</summary>
    public static List<LinkEvent> Parse(ReadOnlySpan<byte> datagram)
    {
        var events = new List<LinkEvent>();
        ForEach(datagram, (type, _, body) =>
        {
            switch (type)
            {
                case RTM_NEWLINK or RTM_DELLINK when body.Length >= IfInfoBytes:
                {
                    int index = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
                    uint flags = BinaryPrimitives.ReadUInt32LittleEndian(body[8..]);
                    string? name = Text(AttributeValue(body[IfInfoBytes..], IFLA_IFNAME));
                    events.Add(new LinkEvent(type == RTM_NEWLINK ? LinkEventKind.LinkChanged : LinkEventKind.LinkRemoved, index, name,
                        (flags & (IFF_UP | IFF_RUNNING)) == (IFF_UP | IFF_RUNNING)));
                    break;
                }
                case RTM_NEWADDR or RTM_DELADDR when body.Length >= IfAddrBytes:
                {
                    int index = (int)BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
                    string? label = Text(AttributeValue(body[IfAddrBytes..], IFA_LABEL));
                    // An IPv4 label may carry an alias suffix ("up1:0"): the interface is the part before it.
                    if (label?.IndexOf(':') is int colon and >= 0)
                        label = label[..colon];
                    events.Add(new LinkEvent(type == RTM_NEWADDR ? LinkEventKind.AddressAdded : LinkEventKind.AddressRemoved, index, label));
                    break;
                }
                case NLMSG_OVERRUN:
                    events.Add(new LinkEvent(LinkEventKind.Overrun, 0, null));
                    break;
            }
        });
        return events;
    }

    /// <summary>The payload of attribute <paramref name="wanted"/> (struct rtattr: u16 length, u16 type, payload; each 4-byte aligned), or null.</summary>
    public static byte[]? AttributeValue(ReadOnlySpan<byte> attributes, ushort wanted)
    {
        while (attributes.Length >= 4)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(attributes);
            ushort type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(attributes[2..]) & 0x3fff); // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
            if (length < 4 || length > attributes.Length)
                return null;
            if (type == wanted)
                return attributes[4..length].ToArray();
            attributes = attributes[Math.Min(attributes.Length, Align(length))..];
        }
        return null;
    }

    // A NUL-terminated string payload.
    private static string? Text(byte[]? value)
    {
        if (value is null)
            return null;
        int end = Array.IndexOf(value, (byte)0);
        return System.Text.Encoding.ASCII.GetString(value, 0, end >= 0 ? end : value.Length);
    }

    private static int Align(int length) => (length + 3) & ~3;
}

/// <summary>
/// A NETLINK_ROUTE socket subscribed to link and IPv4/IPv6 address events of one network namespace (it is created
/// inside it, and keeps listening there from any thread). <see cref="Receive"/> blocks for at most the poll interval.
/// </summary>
public sealed unsafe class LinkEventSocket : IDisposable
{
    private readonly SafeFd _socket;
    private readonly byte[] _buffer = new byte[64 * 1024];

    private LinkEventSocket(SafeFd socket) => _socket = socket;

    /// <summary>Subscribe in namespace <paramref name="ns"/> (null: the host's); <paramref name="poll"/> bounds each receive.</summary>
    public static LinkEventSocket Open(string? ns, TimeSpan poll) => NamespaceScope.Run(ns, () =>
    {
        int fd = Libc.Socket(Libc.AF_NETLINK, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, Libc.NETLINK_ROUTE);
        if (fd < 0)
            throw new BpfException($"open netlink socket{In(ns)}", Marshal.GetLastPInvokeError());
        var socket = new SafeFd(fd);
        try
        {
            // struct sockaddr_nl: u16 family, u16 pad, u32 pid (0: the kernel assigns), u32 groups.
            byte* address = stackalloc byte[12];
            new Span<byte>(address, 12).Clear();
            *(ushort*)address = Libc.AF_NETLINK;
            *(uint*)(address + 8) = Rtnetlink.RTMGRP_LINK | Rtnetlink.RTMGRP_IPV4_IFADDR | Rtnetlink.RTMGRP_IPV6_IFADDR;
            if (Libc.Bind(socket.Fd, address, 12) < 0)
                throw new BpfException($"subscribe to interface events{In(ns)}", Marshal.GetLastPInvokeError());
            int size = 1 << 20;
            Libc.SetSockOpt(socket.Fd, Libc.SOL_SOCKET, Libc.SO_RCVBUF, &size, sizeof(int)); // best effort: an overrun is reported anyway
            long* timeout = stackalloc long[2]; // struct timeval
            timeout[0] = (long)poll.TotalSeconds;
            timeout[1] = poll.Microseconds + poll.Milliseconds * 1000L;
            if (Libc.SetSockOpt(socket.Fd, Libc.SOL_SOCKET, Libc.SO_RCVTIMEO, timeout, 16) < 0)
                throw new BpfException($"set receive timeout of netlink socket{In(ns)}", Marshal.GetLastPInvokeError());
            return new LinkEventSocket(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    });

    private static string In(string? ns) => ns is null ? "" : $" in network namespace {ns}";

    /// <summary>The events of the next datagram; empty when none came within the poll interval.</summary>
    public IReadOnlyList<LinkEvent> Receive()
    {
        bool added = false;
        try
        {
            _socket.DangerousAddRef(ref added);
            nint n;
            fixed (byte* buffer = _buffer)
                n = Libc.Recv(_socket.Fd, buffer, (nuint)_buffer.Length, 0);
            if (n >= 0)
                return Rtnetlink.Parse(_buffer.AsSpan(0, (int)n));
            int errno = Marshal.GetLastPInvokeError();
            if (errno is Libc.EAGAIN or Libc.EINTR)
                return [];
            if (errno == Libc.ENOBUFS)
                return [new LinkEvent(LinkEventKind.Overrun, 0, null)];
            throw new BpfException("receive interface events", errno);
        }
        finally
        {
            if (added)
                _socket.DangerousRelease();
        }
    }

    public void Dispose() => _socket.Dispose();
}
