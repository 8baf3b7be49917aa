using System.Net;

namespace PluginHost.Bench.Packets;

/// <summary>One of the frames the per-packet benchmark runs: family and exact length.</summary>
public sealed record FrameShape(string Id, string Label, bool Ipv6, int Length)
{
    public static readonly FrameShape Ipv4Small = new("ipv4-64", "IPv4 64 B", false, 64);
    public static readonly FrameShape Ipv4Large = new("ipv4-1500", "IPv4 1500 B", false, 1500);
    public static readonly FrameShape Ipv6Small = new("ipv6-64", "IPv6 64 B", true, 64);

    public static readonly IReadOnlyList<FrameShape> All = [Ipv4Small, Ipv4Large, Ipv6Small];

    /// <summary>
    /// The frame from <paramref name="source"/> (an IPv4 source for IPv4 shapes; IPv6 shapes use fixed
    /// documentation addresses). TTL 255: a test run repeats the program on the same buffer, so a forwarding
    /// program decrements the TTL once per repeat and must not reach 1 (ICMP path) within a call.
    /// </summary>
    public byte[] Build(IPAddress source, IPAddress destination) => Ipv6
        ? Frames.Ipv6Udp(IPAddress.Parse("2001:db8:1::10"), IPAddress.Parse("2001:db8:9::1"), Length, hopLimit: 255)
        : Frames.Ipv4Udp(source, destination, Length, ttl: 255);
}
