using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using PluginHost.Contract;

namespace PluginHost.Testing;

/// <summary>
/// Builds the Ethernet frames a test sends through a <see cref="TestChain"/> (or a plugin returns as canaries): IPv4 or
/// IPv6 (by the addresses' family), UDP, TCP or another protocol, ports, TOS / traffic class, TTL, fragments and an
/// 802.1Q tag. The headers come from <see cref="CanaryFrames"/>; this adds what canaries rarely need.
/// <code>
/// byte[] frame = Frame.Udp("198.18.1.10", "198.18.9.1", destinationPort: 53).Dscp(46).Vlan(10).Build();
/// </code>
/// </summary>
public sealed class Frame
{
    private const int Ethernet = 14;
    private const byte IpProtoTcp = 6, IpProtoUdp = 17, Ipv6FragmentHeader = 44;

    private readonly IPAddress _source, _destination;
    private readonly byte _protocol;
    private readonly ushort _sourcePort, _destinationPort;
    private byte? _tos;
    private byte _ttl = 64;
    private ushort? _vlan;
    private (ushort Offset, bool More)? _fragment;

    private Frame(IPAddress source, IPAddress destination, byte protocol, ushort sourcePort, ushort destinationPort)
    {
        if (source.AddressFamily != destination.AddressFamily)
            throw new ArgumentException($"build frame: {source} and {destination} are of different families");
        (_source, _destination, _protocol, _sourcePort, _destinationPort) = (source, destination, protocol, sourcePort, destinationPort);
    }

    /// <summary>A UDP datagram (IPv4 or IPv6, by the addresses).</summary>
    public static Frame Udp(string source, string destination, ushort sourcePort = 40000, ushort destinationPort = 9) =>
        new(IPAddress.Parse(source), IPAddress.Parse(destination), IpProtoUdp, sourcePort, destinationPort);

    /// <summary>A TCP SYN (IPv4 or IPv6, by the addresses).</summary>
    public static Frame Tcp(string source, string destination, ushort sourcePort = 40000, ushort destinationPort = 80) =>
        new(IPAddress.Parse(source), IPAddress.Parse(destination), IpProtoTcp, sourcePort, destinationPort);

    /// <summary>Another protocol (ICMP is 1, ICMPv6 58): 8 bytes of zeros stand for its header; no ports.</summary>
    public static Frame Protocol(string source, string destination, byte protocol) =>
        new(IPAddress.Parse(source), IPAddress.Parse(destination), protocol, 0, 0);

    /// <summary>The IPv4 TOS byte or IPv6 traffic class: DSCP in the upper six bits, ECN in the lower two.</summary>
    public Frame Tos(byte tos) { _tos = tos; return this; }

    /// <summary>The DSCP class (0 to 63), ECN 0: <c>Tos(dscp &lt;&lt; 2)</c>.</summary>
    public Frame Dscp(int dscp) =>
        dscp is >= 0 and <= 63 ? Tos((byte)(dscp << 2)) : throw new ArgumentOutOfRangeException(nameof(dscp), dscp, "build frame: a DSCP class is 0 to 63");

    /// <summary>The IPv4 TTL or IPv6 hop limit (64 by default).</summary>
    public Frame Ttl(byte ttl) { _ttl = ttl; return this; }

    /// <summary>An 802.1Q tag with VLAN id <paramref name="id"/> (0 to 4095) after the MAC addresses.</summary>
    public Frame Vlan(ushort id) =>
        id <= 4095 ? Set(() => _vlan = id) : throw new ArgumentOutOfRangeException(nameof(id), id, "build frame: a VLAN id is 0 to 4095");

    /// <summary>
    /// A fragment: <paramref name="offset"/> in bytes (a multiple of 8), <paramref name="more"/> = more fragments follow.
    /// The first fragment (offset 0, more) keeps its transport header; a later one (offset above 0) carries only payload, so it
    /// has no ports. IPv6 gets a fragment extension header.
    /// </summary>
    public Frame Fragment(ushort offset, bool more = true) =>
        offset % 8 == 0 ? Set(() => _fragment = (offset, more)) : throw new ArgumentOutOfRangeException(nameof(offset), offset, "build frame: a fragment offset is a multiple of 8");

    private Frame Set(Action set) { set(); return this; }

    /// <summary>The frame, a new array each call.</summary>
    public byte[] Build()
    {
        bool v4 = _source.AddressFamily == AddressFamily.InterNetwork;
        byte[] frame = v4 ? CanaryFrames.Ipv4(_source, _destination, _protocol, _sourcePort, _destinationPort, _ttl) : Ipv6();
        if (_tos is { } tos)
            frame = CanaryFrames.WithTos(frame, tos);
        if (_fragment is { } fragment)
            frame = v4 ? Ipv4Fragment(frame, fragment.Offset, fragment.More) : Ipv6Fragment(frame, fragment.Offset, fragment.More);
        if (_vlan is { } vlan)
        {
            var tagged = new byte[frame.Length + 4];
            frame.AsSpan(0, 12).CopyTo(tagged);
            BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(12), 0x8100);
            BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(14), vlan);
            frame.AsSpan(12).CopyTo(tagged.AsSpan(16));
            frame = tagged;
        }
        return frame;
    }

    // IPv6 UDP from CanaryFrames; for TCP or another protocol, the transport header and payload CanaryFrames.Ipv4 writes.
    private byte[] Ipv6()
    {
        var udp = CanaryFrames.Ipv6Udp(_source, _destination, _sourcePort, _destinationPort, _ttl);
        if (_protocol == IpProtoUdp)
            return udp;
        var transport = CanaryFrames.Ipv4(IPAddress.Any, IPAddress.Any, _protocol, _sourcePort, _destinationPort).AsSpan(Ethernet + 20);
        var frame = new byte[Ethernet + 40 + transport.Length];
        udp.AsSpan(0, Ethernet + 40).CopyTo(frame);
        transport.CopyTo(frame.AsSpan(Ethernet + 40));
        var ip = frame.AsSpan(Ethernet);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)transport.Length);
        ip[6] = _protocol;
        return frame;
    }

    private static byte[] Ipv4Fragment(byte[] frame, ushort offset, bool more)
    {
        var ip = frame.AsSpan(Ethernet);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0x1234); // identification
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], (ushort)((more ? 0x2000 : 0) | offset / 8));
        CanaryFrames.WriteIpv4Checksum(ip);
        return frame;
    }

    private static byte[] Ipv6Fragment(byte[] frame, ushort offset, bool more)
    {
        var fragmented = new byte[frame.Length + 8];
        frame.AsSpan(0, Ethernet + 40).CopyTo(fragmented);
        frame.AsSpan(Ethernet + 40).CopyTo(fragmented.AsSpan(Ethernet + 48));
        var ip = fragmented.AsSpan(Ethernet);
        byte next = ip[6];
        ip[6] = Ipv6FragmentHeader;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(BinaryPrimitives.ReadUInt16BigEndian(ip[4..]) + 8));
        var header = ip[40..];
        header[0] = next;
        BinaryPrimitives.WriteUInt16BigEndian(header[2..], (ushort)(offset | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], 0x1234); // identification
        return fragmented;
    }
}
