using System.Buffers.Binary;
using System.Net;

namespace PluginHost.Contract;

/// <summary>What a canary packet must come out as.</summary>
public enum CanaryVerdict
{
    /// <summary>Handed to the kernel (TCX_NEXT).</summary>
    Pass,
    /// <summary>Dropped.</summary>
    Drop,
    /// <summary>Redirected to <see cref="CanaryPacket.RedirectIfindex"/>.</summary>
    Redirect,
}

/// <summary>A known packet and the verdict a correct chain gives it.</summary>
/// <param name="Name">Shown when the canary fails, e.g. "route 198.18.1.0/24".</param>
/// <param name="Frame">The whole Ethernet frame.</param>
/// <param name="Expect">Expected verdict.</param>
/// <param name="RedirectIfindex">For <see cref="CanaryVerdict.Redirect"/>: the interface it must go to.</param>
public sealed record CanaryPacket(string Name, byte[] Frame, CanaryVerdict Expect, int RedirectIfindex = 0);

/// <summary>Frames for canaries, so plugins need not hand-write headers.</summary>
public static class CanaryFrames
{
    /// <summary>Ethernet + IPv4 (valid checksum) + UDP with an 18-byte payload.</summary>
    public static byte[] Ipv4Udp(IPAddress source, IPAddress destination, ushort sourcePort = 40000, ushort destinationPort = 9, byte ttl = 64)
    {
        const int payload = 18;
        var frame = new byte[14 + 20 + 8 + payload];
        frame[0] = 0x02; frame[5] = 0x02; frame[6] = 0x02; frame[11] = 0x01;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0800);
        var ip = frame.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], 20 + 8 + payload);
        ip[8] = ttl;
        ip[9] = 17;
        source.TryWriteBytes(ip[12..], out _);
        destination.TryWriteBytes(ip[16..], out _);
        WriteIpv4Checksum(ip);
        var udp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], 8 + payload);
        return frame;
    }

    /// <summary>
    /// Ethernet + IPv4 (valid checksum) + a minimal transport header of <paramref name="protocol"/>: TCP (20 bytes,
    /// SYN), UDP (8 bytes) or anything else (8 bytes of zeros, e.g. an ICMP header), then 18 bytes of payload.
    /// (Contract 1.1.)
    /// </summary>
    public static byte[] Ipv4(IPAddress source, IPAddress destination, byte protocol, ushort sourcePort = 40000, ushort destinationPort = 9, byte ttl = 64)
    {
        if (protocol == 17)
            return Ipv4Udp(source, destination, sourcePort, destinationPort, ttl);
        const int payload = 18;
        int l4 = protocol == 6 ? 20 : 8;
        var udp = Ipv4Udp(source, destination, sourcePort, destinationPort, ttl);
        var frame = new byte[14 + 20 + l4 + payload];
        udp.AsSpan(0, 34).CopyTo(frame);
        var ip = frame.AsSpan(14);
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + l4 + payload));
        ip[9] = protocol;
        WriteIpv4Checksum(ip);
        if (protocol == 6)
        {
            var tcp = ip[20..];
            BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
            BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], destinationPort);
            tcp[12] = 5 << 4; // data offset: 20 bytes
            tcp[13] = 0x02;   // SYN
        }
        return frame;
    }

    /// <summary>
    /// Write the IPv4 header checksum (RFC 791) into the header at the start of <paramref name="ipHeader"/>: its length
    /// is the header's IHL (options included), the checksum field is zeroed first. Call it after changing any header
    /// field of a frame these helpers built (<c>ipHeader</c> is the frame from byte 14, after the Ethernet header).
    /// (Contract 2.4.)
    /// </summary>
    /// <exception cref="ArgumentException">The span is shorter than the header its IHL announces, or the IHL is below 5.</exception>
    public static void WriteIpv4Checksum(Span<byte> ipHeader)
    {
        int length = ipHeader.Length == 0 ? 0 : (ipHeader[0] & 0x0f) * 4;
        if (length < 20 || ipHeader.Length < length)
            throw new ArgumentException($"write IPv4 checksum: header of {length} bytes (IHL) in {ipHeader.Length} bytes: expected an IHL of 5 to 15 and the whole header", nameof(ipHeader));
        BinaryPrimitives.WriteUInt16BigEndian(ipHeader[10..], 0);
        uint sum = 0;
        for (int i = 0; i < length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(ipHeader[i..]);
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(ipHeader[10..], (ushort)~sum);
    }

    /// <summary>
    /// A copy of <paramref name="frame"/> (Ethernet + IPv4 or IPv6, as these helpers build them) whose IPv4 TOS byte, or
    /// IPv6 traffic class, is <paramref name="tos"/>: DSCP in the upper six bits, ECN in the lower two
    /// (<c>(byte)(dscp &lt;&lt; 2)</c> for a DSCP class). The IPv4 checksum is written again. (Contract 2.4.)
    /// </summary>
    /// <exception cref="ArgumentException">The frame is neither Ethernet + IPv4 nor Ethernet + IPv6.</exception>
    public static byte[] WithTos(byte[] frame, byte tos)
    {
        var copy = frame.ToArray();
        ushort etherType = copy.Length >= 14 ? BinaryPrimitives.ReadUInt16BigEndian(copy.AsSpan(12)) : (ushort)0;
        var ip = copy.AsSpan(14);
        switch (etherType)
        {
            case 0x0800 when ip.Length >= 20:
                ip[1] = tos;
                WriteIpv4Checksum(ip);
                return copy;
            case 0x86dd when ip.Length >= 40:
                // Version (4 bits), traffic class (8), flow label (20).
                ip[0] = (byte)(0x60 | tos >> 4);
                ip[1] = (byte)((tos & 0x0f) << 4 | ip[1] & 0x0f);
                return copy;
            default:
                throw new ArgumentException($"set TOS: not an Ethernet + IPv4 or IPv6 frame (EtherType 0x{etherType:x4}, {frame.Length} bytes)", nameof(frame));
        }
    }

    /// <summary>Ethernet + IPv6 + UDP with an 18-byte payload (UDP checksum left 0: nothing on the test path checks it).</summary>
    public static byte[] Ipv6Udp(IPAddress source, IPAddress destination, ushort sourcePort = 40000, ushort destinationPort = 9, byte hopLimit = 64)
    {
        const int payload = 18;
        var frame = new byte[14 + 40 + 8 + payload];
        frame[0] = 0x02; frame[5] = 0x02; frame[6] = 0x02; frame[11] = 0x01;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x86dd);
        var ip = frame.AsSpan(14);
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 8 + payload);
        ip[6] = 17;
        ip[7] = hopLimit;
        source.TryWriteBytes(ip[8..], out _);
        destination.TryWriteBytes(ip[24..], out _);
        var udp = ip[40..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], 8 + payload);
        return frame;
    }
}
