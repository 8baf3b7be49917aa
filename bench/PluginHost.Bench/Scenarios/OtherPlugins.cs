using PluginHost.Bench.Setup;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Stages of the other plugins for the per-packet benchmark, set up for its frames (UDP 198.18.1.10:40000 →
/// 198.18.9.1:9000, and 2001:db8:1::10 → 2001:db8:9::1): each hit forwards to out1.
/// </summary>
public static class OtherPlugins
{
    /// <summary>IPv6 routes: three that miss the benchmark's IPv6 source, then its /48.</summary>
    public static readonly string Ipv6Stage = $"""
        - plugin: IPv6
          settings:
            routes:
              - from: 2001:db8:a::/48
                interface: {Sandbox.Out2}
              - from: 2001:db8:b::/48
                interface: {Sandbox.Out2}
              - from: 2001:db8:c::/64
                interface: {Sandbox.Out2}
              - from: 2001:db8:1::/48
                interface: {Sandbox.Out1}
                via: fe80::2
        """;

    // Three rules that miss the benchmark packet (another protocol, another port, another source).
    private const string MissingRules = """
              - protocol: tcp
                dport: 443
                action: drop
              - protocol: udp
                dport: 53
                action: pass
              - from: 10.0.0.0/8
                action: drop
        """;

    /// <summary>Four rules; the last (UDP to port 9000 from 198.18.1.0/24) matches.</summary>
    public static readonly string FiveTupleStage = $"""
        - plugin: FiveTuplePolicy
          settings:
            rules:
        {MissingRules}
              - protocol: udp
                from: 198.18.1.0/24
                dport: 9000
                interface: {Sandbox.Out1}
                via: 198.18.2.2
        """;

    /// <summary>The three missing rules alone.</summary>
    public static readonly string FiveTupleMissStage = $"""
        - plugin: FiveTuplePolicy
          settings:
            rules:
        {MissingRules}
        """;

    /// <summary>A service for the benchmark's destination (<paramref name="hit"/>) or for another prefix, over out1 and out2.</summary>
    public static string LoadBalancerStage(bool hit) => $"""
        - plugin: LoadBalancer
          settings:
            services:
              - to: {(hit ? "198.18.9.0/24" : "10.99.0.0/16")}
                nexthops:
                  - interface: {Sandbox.Out1}
                    via: 198.18.2.2
                  - interface: {Sandbox.Out2}
                    via: 198.18.3.2
        """;
}
