using System.Buffers.Binary;
using System.Net;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Contract;

/// <summary>Issue 14: a canary could not set the TOS byte (a router by DSCP class needs it), and the checksum helper was private.</summary>
[Trait("Category", "Unit")]
public sealed class CanaryFramesTests
{
    private static readonly IPAddress Source = IPAddress.Parse("198.18.1.10"), Destination = IPAddress.Parse("198.18.9.1");

    // A header is right when the one's-complement sum over it, checksum included, is 0xffff.
    internal static bool ChecksumHolds(ReadOnlySpan<byte> header)
    {
        uint sum = 0;
        for (int i = 0; i < header.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(header[i..]);
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        return sum == 0xffff;
    }

    [Fact]
    public void An_IPv4_frame_gets_its_TOS_byte_and_a_checksum_that_holds()
    {
        var plain = CanaryFrames.Ipv4(Source, Destination, 6, 40000, 443);

        var marked = CanaryFrames.WithTos(plain, 46 << 2); // DSCP EF

        Assert.Equal(0xb8, marked[15]);
        Assert.True(ChecksumHolds(marked.AsSpan(14, 20)));
        Assert.Equal(0, plain[15]); // a copy: the frame given is left alone
        Assert.Equal(plain.AsSpan(16, 8).ToArray(), marked.AsSpan(16, 8).ToArray());
        Assert.Equal(plain.AsSpan(34).ToArray(), marked.AsSpan(34).ToArray());
    }

    [Fact]
    public void An_IPv6_frame_gets_its_traffic_class_across_the_first_two_bytes()
    {
        var plain = CanaryFrames.Ipv6Udp(IPAddress.Parse("2001:db8::10"), IPAddress.Parse("2001:db8:ffff::1"));

        var marked = CanaryFrames.WithTos(plain, 0xb9);

        uint first = BinaryPrimitives.ReadUInt32BigEndian(marked.AsSpan(14));
        Assert.Equal((6u, 0xb9u, 0u), (first >> 28, (first >> 20) & 0xff, first & 0xfffff));
    }

    [Fact]
    public void Anything_else_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => CanaryFrames.WithTos(new byte[42], 4));
        Assert.StartsWith("set TOS: not an Ethernet + IPv4 or IPv6 frame (EtherType 0x0000, 42 bytes)", e.Message);
    }

    [Fact]
    public void The_public_checksum_covers_options()
    {
        var header = new byte[24];
        header[0] = 0x46; // IHL 6: four bytes of options
        header[8] = 64;
        header[9] = 17;
        header[20] = 0x94; header[21] = 0x04; // router alert
        Source.TryWriteBytes(header.AsSpan(12), out _);
        Destination.TryWriteBytes(header.AsSpan(16), out _);

        CanaryFrames.WriteIpv4Checksum(header);

        Assert.True(ChecksumHolds(header));
        Assert.Throws<ArgumentException>(() => CanaryFrames.WriteIpv4Checksum(header.AsSpan(0, 20)));
    }

    [Fact]
    public void The_contract_minor_version_says_these_were_added()
    {
        var version = typeof(CanaryFrames).Assembly.GetName().Version!;
        Assert.Equal(2, version.Major);
        Assert.True(version.Minor >= 4, $"contract {version} is older than 2.4, which added WithTos");
    }
}
