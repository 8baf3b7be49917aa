using System.Buffers.Binary;
using System.Net;

namespace PluginHost.Tests.Support;

/// <summary>Hand-made frames for BPF_PROG_TEST_RUN.</summary>
public static class Packets
{
    public const int EthernetLength = 14;
    public const int TtlOffset = EthernetLength + 8;
    public const int ChecksumOffset = EthernetLength + 10;

    private static readonly byte[] Dst = [0x02, 0, 0, 0, 0, 0x02];
    private static readonly byte[] Src = [0x02, 0, 0, 0, 0, 0x01];

    /// <summary>An IPv6 frame of protocol 6 (TCP, a 20-byte header, SYN) or 17 (UDP).</summary>
    public static byte[] Ipv6(IPAddress source, IPAddress destination, byte protocol, ushort sport, ushort dport)
    {
        var frame = PluginHost.Contract.CanaryFrames.Ipv6Udp(source, destination, sport, dport);
        if (protocol == 6)
        {
            frame[EthernetLength + 6] = 6;
            frame[EthernetLength + 40 + 4] = 0;
            frame[EthernetLength + 40 + 5] = 0;
            frame[EthernetLength + 40 + 12] = 5 << 4;
            frame[EthernetLength + 40 + 13] = 0x02;
        }
        return frame;
    }

    /// <summary>Ethernet + IPv4 (valid checksum) + UDP with <paramref name="payload"/> zero bytes.</summary>
    public static byte[] Ipv4Udp(string source, string destination, byte ttl = 64, int payload = 18, ushort sport = 40000, ushort dport = 9000)
    {
        int ipLength = 20 + 8 + payload;
        var frame = new byte[EthernetLength + ipLength];
        Dst.CopyTo(frame, 0);
        Src.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0800);
        var ip = frame.AsSpan(EthernetLength);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0x1234);
        ip[8] = ttl;
        ip[9] = 17;
        IPAddress.Parse(source).GetAddressBytes().CopyTo(ip[12..]);
        IPAddress.Parse(destination).GetAddressBytes().CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Ipv4HeaderChecksum(ip[..20]));
        var udp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(8 + payload));
        return frame;
    }

    /// <summary>An ARP request frame.</summary>
    public static byte[] Arp()
    {
        var frame = new byte[42];
        Array.Fill(frame, (byte)0xff, 0, 6);
        Src.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), 1);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), 0x0800);
        frame[18] = 6;
        frame[19] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(20), 1);
        return frame;
    }

    /// <summary>The RFC 791 header checksum with the checksum field taken as zero.</summary>
    public static ushort Ipv4HeaderChecksum(ReadOnlySpan<byte> header)
    {
        uint sum = 0;
        for (int i = 0; i < header.Length; i += 2)
            if (i != 10)
                sum += BinaryPrimitives.ReadUInt16BigEndian(header[i..]);
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    /// <summary>Make an IPv4 frame a fragment: more-fragments flag and offset (bytes, a multiple of 8); the checksum is fixed.</summary>
    public static byte[] AsFragment(byte[] frame, bool moreFragments, int offsetBytes)
    {
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(EthernetLength + 6), (ushort)((moreFragments ? 0x2000 : 0) | offsetBytes / 8));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(ChecksumOffset), Ipv4HeaderChecksum(frame.AsSpan(EthernetLength, 20)));
        return frame;
    }

    /// <summary>The frame with 802.1Q/802.1ad tags inserted after the MAC addresses, outermost first (VLAN 7 each).</summary>
    public static byte[] Tagged(byte[] frame, params ushort[] tpids)
    {
        var tagged = new byte[frame.Length + 4 * tpids.Length];
        frame.AsSpan(0, 12).CopyTo(tagged);
        for (int i = 0; i < tpids.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(12 + 4 * i), tpids[i]);
            BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(14 + 4 * i), 7);
        }
        frame.AsSpan(12).CopyTo(tagged.AsSpan(12 + 4 * tpids.Length));
        return tagged;
    }

    /// <summary>The frame with <paramref name="bytes"/> zero bytes appended (Ethernet padding or a trailer).</summary>
    public static byte[] Padded(byte[] frame, int bytes) => [.. frame, .. new byte[bytes]];

    /// <summary>True when the IPv4 header's checksum field is correct.</summary>
    public static bool Ipv4ChecksumValid(byte[] frame) =>
        BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(ChecksumOffset)) == Ipv4HeaderChecksum(frame.AsSpan(EthernetLength, 20));
}
