using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace PluginHost.Bench.Packets;

/// <summary>
/// Ethernet + IPv4/IPv6 + UDP frames of an exact length (no FCS), headers valid, checksums right, payload zeros.
/// </summary>
public static class Frames
{
    public const int EthernetLength = 14;
    public const int Ipv4HeaderLength = 20;
    public const int Ipv6HeaderLength = 40;
    public const int UdpHeaderLength = 8;

    /// <summary>Offset of the IPv4 TTL in a frame built here.</summary>
    public const int Ipv4TtlOffset = EthernetLength + 8;

    private static readonly byte[] Destination = [0x02, 0, 0, 0, 0, 0x02];
    private static readonly byte[] Source = [0x02, 0, 0, 0, 0, 0x01];

    public static byte[] Ipv4Udp(IPAddress source, IPAddress destination, int frameLength, byte ttl = 64,
        ushort sourcePort = 40000, ushort destinationPort = 9000)
    {
        Require(source, AddressFamily.InterNetwork);
        Require(destination, AddressFamily.InterNetwork);
        var frame = Ethernet(frameLength, EthernetLength + Ipv4HeaderLength + UdpHeaderLength, 0x0800);
        var ip = frame.AsSpan(EthernetLength);
        int ipLength = frameLength - EthernetLength;
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0x1234);
        ip[8] = ttl;
        ip[9] = (byte)ProtocolType.Udp;
        source.GetAddressBytes().CopyTo(ip[12..]);
        destination.GetAddressBytes().CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Fold(Sum(ip[..Ipv4HeaderLength])));

        var udp = ip[Ipv4HeaderLength..];
        WriteUdp(udp, sourcePort, destinationPort);
        uint pseudo = Sum(ip.Slice(12, 8)) + (uint)ProtocolType.Udp + (uint)udp.Length;
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], UdpChecksum(pseudo, udp));
        return frame;
    }

    /// <summary>
    /// An IPv4 frame of protocol <paramref name="protocol"/> from numeric addresses (first byte most significant): TCP, UDP
    /// and SCTP carry their ports in a minimal header (TCP 20 bytes, data offset 5; SCTP the 12-byte common header);
    /// any other protocol carries no transport header, only zeros. Only UDP's checksum is filled in (the others are not read).
    /// </summary>
    public static byte[] Ipv4Transport(uint source, uint destination, byte protocol, ushort sourcePort, ushort destinationPort,
        int frameLength = 64, byte ttl = 64)
    {
        int transport = protocol switch { 6 => 20, 17 => UdpHeaderLength, 132 => 12, _ => 0 };
        var frame = Ethernet(frameLength, EthernetLength + Ipv4HeaderLength + transport, 0x0800);
        var ip = frame.AsSpan(EthernetLength);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(frameLength - EthernetLength));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0x1234);
        ip[8] = ttl;
        ip[9] = protocol;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], source);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], destination);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Fold(Sum(ip[..Ipv4HeaderLength])));

        var l4 = ip[Ipv4HeaderLength..];
        switch (protocol)
        {
            case 17:
                WriteUdp(l4, sourcePort, destinationPort);
                uint pseudo = Sum(ip.Slice(12, 8)) + protocol + (uint)l4.Length;
                BinaryPrimitives.WriteUInt16BigEndian(l4[6..], UdpChecksum(pseudo, l4));
                break;
            case 6:
                BinaryPrimitives.WriteUInt16BigEndian(l4, sourcePort);
                BinaryPrimitives.WriteUInt16BigEndian(l4[2..], destinationPort);
                l4[12] = 5 << 4; // data offset: 5 words
                l4[13] = 0x10; // ACK
                break;
            case 132:
                BinaryPrimitives.WriteUInt16BigEndian(l4, sourcePort);
                BinaryPrimitives.WriteUInt16BigEndian(l4[2..], destinationPort);
                break;
        }
        return frame;
    }

    public static byte[] Ipv6Udp(IPAddress source, IPAddress destination, int frameLength, byte hopLimit = 64,
        ushort sourcePort = 40000, ushort destinationPort = 9000)
    {
        Require(source, AddressFamily.InterNetworkV6);
        Require(destination, AddressFamily.InterNetworkV6);
        var frame = Ethernet(frameLength, EthernetLength + Ipv6HeaderLength + UdpHeaderLength, 0x86dd);
        var ip = frame.AsSpan(EthernetLength);
        int payloadLength = frameLength - EthernetLength - Ipv6HeaderLength;
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)payloadLength);
        ip[6] = (byte)ProtocolType.Udp;
        ip[7] = hopLimit;
        source.GetAddressBytes().CopyTo(ip[8..]);
        destination.GetAddressBytes().CopyTo(ip[24..]);

        var udp = ip[Ipv6HeaderLength..];
        WriteUdp(udp, sourcePort, destinationPort);
        uint pseudo = Sum(ip.Slice(8, 32)) + (uint)ProtocolType.Udp + (uint)udp.Length;
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], UdpChecksum(pseudo, udp));
        return frame;
    }

    private static byte[] Ethernet(int frameLength, int minimum, ushort etherType)
    {
        if (frameLength < minimum || frameLength > 9000)
            throw new ArgumentOutOfRangeException(nameof(frameLength), frameLength, $"build frame: length must be {minimum}..9000 bytes");
        var frame = new byte[frameLength];
        Destination.CopyTo(frame, 0);
        Source.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), etherType);
        return frame;
    }

    private static void WriteUdp(Span<byte> udp, ushort sourcePort, ushort destinationPort)
    {
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udp.Length);
    }

    private static ushort UdpChecksum(uint pseudoHeader, ReadOnlySpan<byte> udp)
    {
        ushort sum = Fold(pseudoHeader + Sum(udp));
        return sum == 0 ? (ushort)0xffff : sum; // 0 means "no checksum" in UDP
    }

    // One's-complement sum of 16-bit big-endian words (an odd last byte is padded with zero).
    private static uint Sum(ReadOnlySpan<byte> bytes)
    {
        uint sum = 0;
        int i = 0;
        for (; i + 1 < bytes.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(bytes[i..]);
        if (i < bytes.Length)
            sum += (uint)bytes[i] << 8;
        return sum;
    }

    private static ushort Fold(uint sum)
    {
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    private static void Require(IPAddress address, AddressFamily family)
    {
        if (address.AddressFamily != family)
            throw new ArgumentException($"build frame: {address} is not an {(family == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} address");
    }
}
