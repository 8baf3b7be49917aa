using System.Buffers.Binary;
using System.Net;
using System.Text;
using PluginHost.Net;
using Xunit;

namespace PluginHost.Tests.Bpf;

/// <summary>rtnetlink messages and the on-link check: pure, no kernel.</summary>
[Trait("Category", "Unit")]
public sealed class InterfaceEventsTests
{
    // struct nlmsghdr + body, padded to 4 bytes.
    private static byte[] Message(ushort type, byte[] body)
    {
        var m = new byte[(16 + body.Length + 3) & ~3];
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)(16 + body.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), type);
        body.CopyTo(m, 16);
        return m;
    }

    private static byte[] Attribute(ushort type, string value)
    {
        var text = Encoding.ASCII.GetBytes(value + "\0");
        var a = new byte[(4 + text.Length + 3) & ~3];
        BinaryPrimitives.WriteUInt16LittleEndian(a, (ushort)(4 + text.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(a.AsSpan(2), type);
        text.CopyTo(a, 4);
        return a;
    }

    private static byte[] Link(ushort type, int ifindex, uint flags, string? name)
    {
        var info = new byte[16]; // struct ifinfomsg
        BinaryPrimitives.WriteInt32LittleEndian(info.AsSpan(4), ifindex);
        BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(8), flags);
        return Message(type, [.. info, .. Attribute(4, "x"), .. name is null ? [] : Attribute(Rtnetlink.IFLA_IFNAME, name)]); // IFLA_MTU-like noise first
    }

    private static byte[] Address(ushort type, int ifindex, string? label)
    {
        var info = new byte[8]; // struct ifaddrmsg
        BinaryPrimitives.WriteUInt32LittleEndian(info.AsSpan(4), (uint)ifindex);
        return Message(type, [.. info, .. label is null ? [] : Attribute(Rtnetlink.IFA_LABEL, label)]);
    }

    [Fact]
    public void ADatagramOfLinkAndAddressMessagesBecomesItsEvents()
    {
        byte[] datagram = [.. Link(Rtnetlink.RTM_NEWLINK, 7, 0x41, "up2"), .. Link(Rtnetlink.RTM_NEWLINK, 8, 0x1, "up3"),
            .. Link(Rtnetlink.RTM_DELLINK, 7, 0, "up2"), .. Address(Rtnetlink.RTM_NEWADDR, 9, "up1:0"), .. Address(Rtnetlink.RTM_DELADDR, 9, null),
            .. Message(Rtnetlink.NLMSG_OVERRUN, [])];

        var events = Rtnetlink.Parse(datagram);

        Assert.Equal([
            new LinkEvent(LinkEventKind.LinkChanged, 7, "up2", Up: true),
            new LinkEvent(LinkEventKind.LinkChanged, 8, "up3", Up: false), // up but no carrier (IFF_RUNNING)
            new LinkEvent(LinkEventKind.LinkRemoved, 7, "up2"),
            new LinkEvent(LinkEventKind.AddressAdded, 9, "up1"),        // the alias suffix is not the interface
            new LinkEvent(LinkEventKind.AddressRemoved, 9, null),       // IPv6 addresses carry no label
            new LinkEvent(LinkEventKind.Overrun, 0, null)], events);
    }

    [Fact]
    public void TruncatedAndUnknownMessagesAreSkippedWithoutThrowing()
    {
        var good = Link(Rtnetlink.RTM_NEWLINK, 3, 0x41, "lan0");
        byte[] unknown = Message(24, new byte[12]); // RTM_NEWROUTE: not ours
        var truncated = good[..20];
        BinaryPrimitives.WriteUInt32LittleEndian(truncated, 200);

        Assert.Equal([new LinkEvent(LinkEventKind.LinkChanged, 3, "lan0", Up: true)], Rtnetlink.Parse([.. unknown, .. good, .. truncated]));
        Assert.Empty(Rtnetlink.Parse(new byte[7]));
    }

    [Fact]
    public void DirectRoutesAreReadFromProcAndGatewayRoutesAreNot()
    {
        string[] ipv4 =
        [
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
            "up1\t000212C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
            "up1\t000912C6\t020212C6\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0",
            "up2\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0",
        ];
        Assert.Equal([("up1", new Subnet(IPAddress.Parse("198.18.2.0"), 24)), ("up2", new Subnet(IPAddress.Any, 0))], OnLink.ParseIpv4Routes(ipv4));

        string[] ipv6 =
        [
            "20010db8000200000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     up1",
            "20010db8000900000000000000000000 40 00000000000000000000000000000000 00 20010db8000200000000000000000002 00000400 00000000 00000000 00000003     up1",
            "20010db8000200000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo",
        ];
        Assert.Equal([("up1", new Subnet(IPAddress.Parse("2001:db8:2::"), 64))], OnLink.ParseIpv6Routes(ipv6));
    }

    [Fact]
    public void ANextHopIsOnLinkInsideASubnetOfItsInterfaceOnly()
    {
        var subnets = new List<Subnet> { Subnet.Of(IPAddress.Parse("198.18.2.1"), 24), Subnet.Of(IPAddress.Parse("fe80::1"), 64), Subnet.Of(IPAddress.Parse("2001:db8:2::1"), 64) };

        Assert.Null(OnLink.Problem(IPAddress.Parse("198.18.2.2"), "up1", subnets));
        Assert.Null(OnLink.Problem(IPAddress.Parse("2001:db8:2::2"), "up1", subnets));
        Assert.Null(OnLink.Problem(IPAddress.Parse("fe80::99"), "up1", [])); // link-local: the interface is its zone
        Assert.Equal("next hop 198.18.3.9 is not on-link for up1 (its subnets: 198.18.2.0/24)", OnLink.Problem(IPAddress.Parse("198.18.3.9"), "up1", subnets));
        Assert.Equal("next hop 2001:db8:3::2 is not on-link for up1 (its subnets: 2001:db8:2::/64)", OnLink.Problem(IPAddress.Parse("2001:db8:3::2"), "up1", subnets));
        Assert.True(OnLink.HasAny(subnets, System.Net.Sockets.AddressFamily.InterNetwork));
        Assert.False(OnLink.HasAny([Subnet.Of(IPAddress.Parse("fe80::1"), 64)], System.Net.Sockets.AddressFamily.InterNetworkV6));
    }

    [Fact]
    public void ANeighbourRequestIsAnNdmsgWithItsDestination()
    {
        var entry = new NeighbourEntry(2, 5, Neighbours.NUD_NONE, IPAddress.Parse("198.18.4.2").GetAddressBytes());

        var m = Neighbours.Request(Neighbours.RTM_NEWNEIGH, 0x105, 7, entry, Neighbours.NTF_USE);

        Assert.Equal(16 + 12 + 8, m.Length);
        Assert.Equal((uint)m.Length, BinaryPrimitives.ReadUInt32LittleEndian(m));
        Assert.Equal(Neighbours.RTM_NEWNEIGH, BinaryPrimitives.ReadUInt16LittleEndian(m.AsSpan(4)));
        Assert.Equal(0x105, BinaryPrimitives.ReadUInt16LittleEndian(m.AsSpan(6))); // request, ack, replace
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(m.AsSpan(8)));
        Assert.Equal(2, m[16]);                                                    // ndm_family
        Assert.Equal(5, BinaryPrimitives.ReadInt32LittleEndian(m.AsSpan(20)));    // ndm_ifindex
        Assert.Equal(Neighbours.NUD_NONE, BinaryPrimitives.ReadUInt16LittleEndian(m.AsSpan(24)));
        Assert.Equal(Neighbours.NTF_USE, m[26]);                                   // ndm_flags
        Assert.Equal(8, BinaryPrimitives.ReadUInt16LittleEndian(m.AsSpan(28)));    // NDA_DST: 4 + 4 bytes
        Assert.Equal(Neighbours.NDA_DST, BinaryPrimitives.ReadUInt16LittleEndian(m.AsSpan(30)));
        Assert.Equal([198, 18, 4, 2], m[32..]);
        Assert.Equal(16 + 12, Neighbours.Request(Neighbours.RTM_GETNEIGH, 0x301, 1, new NeighbourEntry(0, 0, 0, []), 0).Length); // a dump asks for no destination
    }

    private static byte[] Neighbour(int ifindex, ushort state, IPAddress? destination, uint seq = 1)
    {
        var ndm = new byte[12];
        ndm[0] = (byte)(destination?.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? 10 : 2);
        BinaryPrimitives.WriteInt32LittleEndian(ndm.AsSpan(4), ifindex);
        BinaryPrimitives.WriteUInt16LittleEndian(ndm.AsSpan(8), state);
        byte[] attributes = [];
        if (destination is not null)
        {
            var bytes = destination.GetAddressBytes();
            attributes = new byte[4 + bytes.Length];
            BinaryPrimitives.WriteUInt16LittleEndian(attributes, (ushort)attributes.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(attributes.AsSpan(2), Neighbours.NDA_DST);
            bytes.CopyTo(attributes, 4);
        }
        var m = Message(Neighbours.RTM_NEWNEIGH, [.. ndm, .. new byte[] { 8, 0, 2, 0, 1, 2, 3, 4 }, .. attributes]); // NDA_LLADDR-like noise first
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), seq);
        return m;
    }

    private static byte[] Control(ushort type, uint seq, int error = 0)
    {
        var m = Message(type, new byte[4]);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), seq);
        BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(16), error);
        return m;
    }

    [Fact]
    public void ANeighbourDumpBecomesItsEntriesAndEndsAtDoneOrError()
    {
        byte[] datagram = [.. Neighbour(5, Neighbours.NUD_INCOMPLETE, IPAddress.Parse("198.18.4.2")),
            .. Neighbour(3, 0x02, IPAddress.Parse("2001:db8:2::2")), .. Neighbour(4, 0x40, null), .. Control(Rtnetlink.NLMSG_DONE, 1)];

        var entries = Neighbours.ParseEntries(datagram);

        Assert.Equal(2, entries.Count); // the one without a destination is skipped
        Assert.Equal((2, 5, Neighbours.NUD_INCOMPLETE), (entries[0].Family, entries[0].Ifindex, entries[0].State));
        Assert.Equal(IPAddress.Parse("198.18.4.2"), new IPAddress(entries[0].Destination));
        Assert.Equal((10, 3, (ushort)0x02), (entries[1].Family, entries[1].Ifindex, entries[1].State));
        Assert.Equal(IPAddress.Parse("2001:db8:2::2"), new IPAddress(entries[1].Destination));
        Assert.Equal(0, Neighbours.End(datagram, 1));
        Assert.Null(Neighbours.End(datagram, 2));                                      // another request's
        Assert.Null(Neighbours.End(Neighbour(5, 1, IPAddress.Loopback), 1));           // more to come
        Assert.Equal(-2, Neighbours.End(Control(Rtnetlink.NLMSG_ERROR, 3, -2), 3));    // ENOENT
        Assert.Equal(0, Neighbours.End(Control(Rtnetlink.NLMSG_ERROR, 3), 3));         // an ack
    }
}
