using System.Buffers.Binary;
using PluginHost.Testing;
using Xunit;

namespace PluginHost.Tests.Testing;

[Trait("Category", "Unit")]
public sealed class FrameTests
{
    [Fact]
    public void An_ipv4_udp_frame_carries_its_dscp_ports_and_a_valid_checksum()
    {
        var frame = Frame.Udp("198.18.1.10", "198.18.9.1", 1234, 53).Dscp(46).Ttl(9).Build();

        Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
        Assert.Equal(46 << 2, frame[14 + 1]);
        Assert.Equal(9, frame[14 + 8]);
        Assert.Equal(1234, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(34)));
        Assert.Equal(53, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(36)));
        Assert.True(Contract.CanaryFramesTests.ChecksumHolds(frame.AsSpan(14, 20)));
    }

    [Fact]
    public void A_vlan_tag_goes_between_the_macs_and_the_ethertype()
    {
        var frame = Frame.Tcp("198.18.1.10", "198.18.9.1").Vlan(10).Build();

        Assert.Equal(0x8100, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
        Assert.Equal(10, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14)));
        Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(16)));
        Assert.Equal(6, frame[18 + 9]);
    }

    [Fact]
    public void An_ipv4_fragment_sets_its_offset_and_more_flag_and_keeps_the_checksum_valid()
    {
        var frame = Frame.Udp("198.18.1.10", "198.18.9.1").Fragment(1480, more: false).Build();

        Assert.Equal(1480 / 8, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14 + 6)));
        Assert.True(Contract.CanaryFramesTests.ChecksumHolds(frame.AsSpan(14, 20)));
        Assert.Equal(0x2000, BinaryPrimitives.ReadUInt16BigEndian(Frame.Udp("198.18.1.10", "198.18.9.1").Fragment(0).Build().AsSpan(14 + 6)));
    }

    [Fact]
    public void An_ipv6_fragment_gets_a_fragment_header_naming_the_transport()
    {
        var frame = Frame.Tcp("2001:db8::1", "2001:db8::2", 1, 443).Tos(0xb8).Fragment(0).Build();
        var ip = frame.AsSpan(14);

        Assert.Equal(44, ip[6]);
        Assert.Equal(6, ip[40]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(ip[42..]) & 1);
        Assert.Equal(8 + 20 + 18, BinaryPrimitives.ReadUInt16BigEndian(ip[4..]));
        Assert.Equal(443, BinaryPrimitives.ReadUInt16BigEndian(ip[50..]));
        Assert.Equal(0xb8, (ip[0] & 0x0f) << 4 | ip[1] >> 4);
    }

    [Fact]
    public void Values_out_of_range_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Frame.Udp("192.0.2.1", "192.0.2.2").Dscp(64));
        Assert.Throws<ArgumentOutOfRangeException>(() => Frame.Udp("192.0.2.1", "192.0.2.2").Fragment(3));
        Assert.Throws<ArgumentException>(() => Frame.Udp("192.0.2.1", "2001:db8::2"));
    }
}
