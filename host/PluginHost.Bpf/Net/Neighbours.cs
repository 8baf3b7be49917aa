using System.Buffers.Binary;
using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>One neighbour entry (<c>struct ndmsg</c> and its <c>NDA_DST</c>), as an rtnetlink dump lists it.</summary>
/// <param name="State">NUD_* bits (<see cref="Neighbours.NUD_INCOMPLETE"/>...).</param>
/// <param name="Destination">The next hop's address bytes (4 or 16).</param>
public sealed record NeighbourEntry(byte Family, int Ifindex, ushort State, byte[] Destination);

/// <summary>
/// The kernel's neighbour table (ARP, NDP) in the calling thread's network namespace, for one repair: an interface that
/// comes back up may carry entries left incomplete while it was down. A redirect to a next hop creates its entry even
/// on a down interface (<c>bpf_redirect_neigh</c>, in the few ms before an apply withdraws the route); its solicitations
/// fail there, and once the interface is up the next one is sent only when the entry's retransmit timer fires (up to
/// <c>retrans_time_ms</c>, 1 s by default, later): meanwhile every packet to that next hop queues behind it and, past
/// <c>unres_qlen_bytes</c>, is dropped. <see cref="Reprobe"/> makes such entries solicit again at once.
/// </summary>
public static unsafe class Neighbours
{
    public const ushort RTM_NEWNEIGH = 28, RTM_GETNEIGH = 30;
    public const ushort NUD_NONE = 0x00, NUD_INCOMPLETE = 0x01;
    public const byte NTF_USE = 0x01;
    public const ushort NDA_DST = 1;
    private const ushort NLM_F_REQUEST = 0x1, NLM_F_ACK = 0x4, NLM_F_DUMP = 0x300, NLM_F_REPLACE = 0x100;
    private const int HeaderBytes = 16, NdMsgBytes = 12;

    /// <summary>
    /// Make every incomplete neighbour entry of interface <paramref name="ifindex"/> solicit now, keeping the packets queued
    /// on it (they leave once the answer comes): each is set to NUD_NONE, then used (NTF_USE), which sends a solicitation at
    /// once. Entries in any other state are left alone (a failed one solicits at once when the next packet needs it).
    /// Returns how many entries were asked again.
    /// </summary>
    public static int Reprobe(int ifindex)
    {
        using var socket = Open();
        uint seq = 1;
        Send(socket, Request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq, new NeighbourEntry(0, 0, 0, []), 0), "list neighbours");
        var waiting = new List<NeighbourEntry>();
        ReceiveAll(socket, seq, "list neighbours", datagram => waiting.AddRange(ParseEntries(datagram)
            .Where(n => n.Ifindex == ifindex && n.State == NUD_INCOMPLETE)));
        foreach (var n in waiting)
        {
            var entry = n with { State = NUD_NONE };
            Send(socket, Request(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE, ++seq, entry, 0), "reset neighbour");
            ReceiveAll(socket, seq, "reset neighbour", _ => { });
            Send(socket, Request(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE, ++seq, entry, NTF_USE), "solicit neighbour");
            ReceiveAll(socket, seq, "solicit neighbour", _ => { });
        }
        return waiting.Count;
    }

    /// <summary>A request: <c>nlmsghdr</c>, <c>ndmsg</c> and, when <paramref name="entry"/> has one, its <c>NDA_DST</c>.</summary>
    public static byte[] Request(ushort type, ushort flags, uint seq, NeighbourEntry entry, byte ndmFlags)
    {
        int attribute = entry.Destination.Length == 0 ? 0 : (4 + entry.Destination.Length + 3) & ~3;
        var m = new byte[HeaderBytes + NdMsgBytes + attribute];
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)m.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(6), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), seq);
        var ndm = m.AsSpan(HeaderBytes);
        ndm[0] = entry.Family;
        BinaryPrimitives.WriteInt32LittleEndian(ndm[4..], entry.Ifindex);
        BinaryPrimitives.WriteUInt16LittleEndian(ndm[8..], entry.State);
        ndm[10] = ndmFlags;
        if (attribute > 0)
        {
            var a = ndm[NdMsgBytes..];
            BinaryPrimitives.WriteUInt16LittleEndian(a, (ushort)(4 + entry.Destination.Length));
            BinaryPrimitives.WriteUInt16LittleEndian(a[2..], NDA_DST);
            entry.Destination.CopyTo(a[4..]);
        }
        return m;
    }

    /// <summary>The RTM_NEWNEIGH entries of one dump datagram; other messages are skipped, a truncated one ends it.</summary>
    public static List<NeighbourEntry> ParseEntries(ReadOnlySpan<byte> datagram)
    {
        var entries = new List<NeighbourEntry>();
        Rtnetlink.ForEach(datagram, (type, _, body) =>
        {
            if (type == RTM_NEWNEIGH && body.Length >= NdMsgBytes && Rtnetlink.AttributeValue(body[NdMsgBytes..], NDA_DST) is { } destination)
                entries.Add(new NeighbourEntry(body[0], BinaryPrimitives.ReadInt32LittleEndian(body[4..]),
                    BinaryPrimitives.ReadUInt16LittleEndian(body[8..]), destination));
        });
        return entries;
    }

    private static SafeFd Open()
    {
        int fd = Libc.Socket(Libc.AF_NETLINK, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, Libc.NETLINK_ROUTE);
        if (fd < 0)
            throw new BpfException("open netlink socket", Marshal.GetLastPInvokeError());
        var socket = new SafeFd(fd);
        long* timeout = stackalloc long[2] { 1, 0 }; // struct timeval: a kernel that never answers is an error, not a hang
        if (Libc.SetSockOpt(socket.Fd, Libc.SOL_SOCKET, Libc.SO_RCVTIMEO, timeout, 16) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            socket.Dispose();
            throw new BpfException("set receive timeout of netlink socket", errno);
        }
        return socket;
    }

    private static void Send(SafeFd socket, byte[] message, string what)
    {
        fixed (byte* m = message)
            if (Libc.Send(socket.Fd, m, (nuint)message.Length, 0) < 0)
                throw new BpfException(what, Marshal.GetLastPInvokeError());
    }

    // Datagrams answering request seq until NLMSG_DONE or its NLMSG_ERROR (an ack when the error is 0).
    private static void ReceiveAll(SafeFd socket, uint seq, string what, Action<ReadOnlySpan<byte>> datagram)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            nint n;
            fixed (byte* b = buffer)
                n = Libc.Recv(socket.Fd, b, (nuint)buffer.Length, 0);
            if (n < 0)
                throw new BpfException(what, Marshal.GetLastPInvokeError());
            var span = buffer.AsSpan(0, (int)n);
            datagram(span);
            if (End(span, seq) is int error)
            {
                if (error != 0)
                    throw new BpfException(what, -error);
                return;
            }
        }
    }

    /// <summary>Whether a datagram ends request <paramref name="seq"/>: null when it does not, else the errno (negative, 0 for done or an ack).</summary>
    public static int? End(ReadOnlySpan<byte> datagram, uint seq)
    {
        int? end = null;
        Rtnetlink.ForEach(datagram, (type, from, body) =>
        {
            if (end is not null || from != seq)
                return;
            if (type == Rtnetlink.NLMSG_DONE)
                end = 0;
            else if (type == Rtnetlink.NLMSG_ERROR)
                end = body.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(body) : -Libc.EINVAL;
        });
        return end;
    }
}
