using PluginHost.Tests.Support;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>Settings validation of LoadBalancer, and the slot table its weights become.</summary>
[Trait("Category", "Unit")]
public sealed class LoadBalancerSettingsTests(LoadBalancerFixture fixture) : IClassFixture<LoadBalancerFixture>
{
    private const string Service0 = "pipelines[0].stages[0].settings.services[0]";

    private const int LoadBalancerDefaultTableSize = 4093;

    private readonly IRoutingPlugin _plugin = fixture.Plugin;
    private readonly FakeStageContext _context = FakeStageContext.Default();

    private StageSetup Configure(string settingsYaml) => _plugin.Configure(PluginFixture.Settings("LoadBalancer", settingsYaml), _context);

    [Fact]
    public void WeightsBecomeTheirShareOfAMaglevTable()
    {
        var setup = Configure("""
            services:
              - to: 198.18.9.0/24
                nexthops:
                  - interface: up1
                    weight: 3
                  - interface: up2
            """);

        Assert.Empty(_context.Errors);
        var ring = Assert.Single(setup.Tables, t => t.Map == "ring");
        Assert.Equal(LoadBalancerDefaultTableSize, ring.Count);
        // Ring entries name backends by id; the backends map gives each id its path.
        var backends = Rows(setup, "backends");
        Assert.Equal([7UL, 8UL], backends.Select(b => b[3]));
        ulong up1 = backends[0][0], up2 = backends[1][0];
        Assert.NotEqual(0UL, up1);
        var entries = Enumerable.Range(0, ring.Count).Select(i => ring.Row(i)[1]).ToList();
        Assert.InRange(entries.Count(b => b == up1), 3060, 3080); // 3/4 of 4,093 = 3,069.75
        Assert.Equal(ring.Count, entries.Count(b => b == up1 || b == up2));
        Assert.Equal([24UL, 0xC6120900UL, 0UL, 1UL], Rows(setup, "services").Single()); // its list: one service from 0
        var service = Rows(setup, "svclist").Single();
        Assert.Equal((0UL, 4093UL, 0UL), (service[1], service[2], service[4])); // base, size, counter slot
        Assert.Equal(16384u, setup.MapSizes["ring"]); // room for four default tables
        Assert.Equal(65536u, setup.MapSizes["flows"]);
        Assert.Equal(2, setup.Canaries.Count);
        Assert.Contains("1 service (0 IPv6), 2 backends", setup.Summary);
        Assert.Contains("flow table: 65,536 flows (6.0 MiB)", setup.Summary);
        Assert.Equal(["up1", "up2", "198.18.9.0/24"], setup.ItemCounters.Select(c => c.Item));
    }

    private static List<ulong[]> Rows(StageSetup setup, string map)
    {
        var table = setup.Tables.Single(t => t.Map == map);
        return Enumerable.Range(0, table.Count).Select(i => table.Row(i).ToArray()).ToList();
    }

    [Fact]
    public void AnIpv6ServiceIsAccepted()
    {
        var setup = Configure("""
            services:
              - to: 2001:db8:9::/48
                tableSize: 1021
                nexthops:
                  - interface: up1
                    via: fe80::2
                  - interface: up2
                    via: 2001:db8:3::2
                    weight: 0
            """);

        Assert.Empty(_context.Errors);
        Assert.Equal([48UL, 0x20010db800090000UL, 0UL, 0UL, 1UL], Rows(setup, "services6").Single());
        Assert.Equal(1021UL, Rows(setup, "svclist").Single()[2]);
        ulong up1 = Rows(setup, "backends")[0][0];
        Assert.All(Rows(setup, "ring"), entry => Assert.Equal(up1, entry[1])); // up2 is drained
        Assert.Equal([0UL, 1UL], Rows(setup, "backends").Select(b => b[7])); // state: up, drained
        Assert.Equal(0, setup.Tables.Single(t => t.Map == "services").Count);
        Assert.Equal(2, setup.Canaries.Count);
    }

    [Fact]
    public void ServicesOfAPrefixAreTriedMostSpecificFirstThenThoseOfCoveringPrefixes()
    {
        var setup = Configure("""
            services:
              - { name: any, to: 198.18.9.0/24 }
              - { name: web, to: 198.18.9.0/24, protocol: tcp, port: 443 }
              - { name: dns, to: 198.18.0.0/16, port: 53 }
              - { name: udp, to: 198.18.9.0/24, protocol: udp }
              - { name: half, to: 198.18.9.128/25, protocol: 6 }
            """);

        Assert.Empty(_context.Errors);
        var ids = new[] { "any", "web", "dns", "udp", "half" }.ToDictionary(n => (ulong)Identity("service\n" + n), n => n);
        var list = Rows(setup, "svclist").Select(r => ids[r[3]]).ToList();
        // Per prefix (in settings order of their first service): /24, /16, /25.
        Assert.Equal([(24UL, 0UL, 4UL), (16UL, 4UL, 1UL), (25UL, 5UL, 5UL)], Rows(setup, "services").Select(r => (r[0], r[2], r[3])));
        Assert.Equal(["web", "udp", "any", "dns", "dns", "half", "web", "udp", "any", "dns"], list);
        var web = Rows(setup, "svclist")[0];
        Assert.Equal((443UL, 6UL, 6UL), (web[5], web[6], web[7])); // port, protocol, flags: protocol and port
        Assert.Equal(0, setup.Tables.Single(t => t.Map == "ring").Count); // no backends yet: no tables
        Assert.Equal(0, setup.Canaries.Count(c => c.Expect == CanaryVerdict.Redirect));
    }

    // The plugin's identity hash (Model.cs, Identity.Of): FNV-1a, never 0.
    private static uint Identity(string text)
    {
        uint hash = 2166136261;
        foreach (char c in text)
            hash = (hash ^ c) * 16777619;
        return hash == 0 ? 1 : hash;
    }

    [Fact]
    public void BackendsListedApartJoinTheirServiceAndWeightsDrainAndDownChangeThemByName()
    {
        var setup = Configure("""
            services:
              - name: web
                to: 198.18.9.0/24
                nexthops:
                  - interface: up1
                    via: 198.18.2.2
            backends:
              - { name: b, service: web, interface: up2, via: 198.18.3.2 }
              - { name: c, service: web, interface: up2, via: 198.18.3.3, weight: 5 }
              - { name: d, service: web, interface: up2, via: 198.18.3.4 }
            weights: [{ name: c, weight: 0 }, { name: b, weight: 7 }]
            drain: [{ name: up1@198.18.2.2 }, { name: gone }]
            down: [{ name: d }]
            """);

        Assert.Empty(_context.Errors);
        var (node, warning) = Assert.Single(_context.Warnings);
        Assert.Equal("pipelines[0].stages[0].settings.drain[1].name", node.Path);
        Assert.Equal("drain: no backend named 'gone' (ignored)", warning);
        var backends = Rows(setup, "backends");
        Assert.Equal([1UL, 0UL, 1UL, 2UL], backends.Select(b => b[7])); // drained, up, drained (weight 0), down
        Assert.Equal([0UL, 1UL, 2UL, 3UL], backends.Select(b => b[6])); // counter slots
        ulong b = backends[1][0];
        Assert.All(Rows(setup, "ring"), entry => Assert.Equal(b, entry[1])); // only b is up
        Assert.Equal(["up1@198.18.2.2", "b", "c", "d", "web"], setup.ItemCounters.Select(c => c.Item));
        Assert.Contains("4 backends (2 drained, 1 down or withdrawn)", setup.Summary);
    }

    [Fact]
    public void AnIdentityNamesServiceNameAndPathButNotWeightOrState()
    {
        ulong Id(string backend) => Rows(Configure($"services:\n  - name: web\n    to: 198.18.9.0/24\nbackends:\n  - {backend}"), "backends")[0][0];

        ulong first = Id("{ name: b, service: web, interface: up2, via: 198.18.3.2 }");
        Assert.Equal(first, Id("{ name: b, service: web, interface: up2, via: 198.18.3.2, weight: 9 }"));
        Assert.NotEqual(first, Id("{ name: b, service: web, interface: up2, via: 198.18.3.3 }"));
        Assert.NotEqual(first, Id("{ name: b2, service: web, interface: up2, via: 198.18.3.2 }"));
    }

    [Theory]
    [InlineData("backends: [{ name: b, service: nope, interface: up1 }]", "backends[0].service", "unknown service 'nope' (services: web)")]
    [InlineData("backends: [{ service: web, interface: up1 }]", "backends[0].name", "missing backend name")]
    [InlineData("backends: [{ name: up1, service: web, interface: up2 }]", "backends[0].name", "duplicate backend name 'up1' (first given at pipelines[0].stages[0].settings.services[0].nexthops[0])")]
    [InlineData("backends: [{ name: web, service: web, interface: up2 }]", "backends[0].name", "backend name 'web' is a service's name")]
    [InlineData("backends: [{ name: b, service: web, interface: up1, via: 2001:db8::1 }]", "backends[0].via", "is IPv6 but the service is IPv4")]
    [InlineData("weights: [{ name: up1, weight: 1001 }]", "weights[0].weight", "invalid weight '1001'")]
    [InlineData("flowTableSize: 100", "flowTableSize", "invalid flow table size '100': expected a whole number from 1,024 to 16,777,216")]
    public void BadStageSettingsAreRefusedAtTheirField(string yaml, string field, string message)
    {
        var setup = Configure("services:\n  - name: web\n    to: 198.18.9.0/24\n    nexthops:\n      - interface: up1\n" + yaml);

        Assert.Empty(setup.Tables.SelectMany(t => Enumerable.Range(0, t.Count)));
        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal($"pipelines[0].stages[0].settings.{field}", node.Path);
        Assert.Contains(message, error);
    }

    [Fact]
    public void TheFlowTableIsSizedBySettingsAndReported()
    {
        var setup = Configure("flowTableSize: 1048576\nservices:\n  - to: 2001:db8:9::/48\n    tableSize: 65537\n    nexthops:\n      - interface: up1\n        via: fe80::2");

        Assert.Empty(_context.Errors);
        Assert.Equal(1048576u, setup.MapSizes["flows"]);
        Assert.Contains("Maglev tables: 1 of 65,537 entries; flow table: 1,048,576 flows (96.0 MiB)", setup.Summary);
    }

    [Fact]
    public void ABackendWhoseWeightEarnsNoEntryIsWarnedAbout()
    {
        var hops = string.Join("", Enumerable.Range(0, 15).Select(i => $"\n      - interface: up1\n        via: 198.18.2.{i + 2}\n        weight: 1000"));
        Configure("services:\n  - to: 198.18.9.0/24\n    tableSize: 1031\n    nexthops:\n      - interface: up2\n        via: 198.18.3.2\n        weight: 1" + hops);

        Assert.Empty(_context.Errors);
        var (node, warning) = Assert.Single(_context.Warnings);
        Assert.Equal($"{Service0}.nexthops[0]", node.Path);
        Assert.Contains("gets no entry", warning);
    }

    [Theory]
    [InlineData("to: 198.18.9.1/24", "to", "host bits are set (did you mean 198.18.9.0/24?)")]
    [InlineData("to: 198.18.9.0/24\n  hash: random", "hash", "invalid hash 'random'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      weight: 1001", "nexthops[0].weight", "invalid weight '1001'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      weight: -1", "nexthops[0].weight", "invalid weight '-1'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      via: 2001:db8::2", "nexthops[0].via", "is IPv6 but the service is IPv4")]
    [InlineData("to: 2001:db8:9::/48\n  nexthops:\n    - interface: up1\n      via: fe80::2\n    - interface: up2\n      via: 198.18.3.2", "nexthops[1].via", "is IPv4 but the service is IPv6")]
    [InlineData("to: fe80::/64", "to", "never forwarded")]
    [InlineData("to: 198.18.9.0/24\n  tableSize: 4096\n  nexthops:\n    - interface: up1", "tableSize", "invalid table size '4096'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      via: 224.0.0.1", "nexthops[0].via", "invalid next hop '224.0.0.1'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n    - interface: up1", "nexthops[1]", "duplicate next hop")]
    [InlineData("to: 198.18.9.0/24\n  nexthops: up1", "nexthops", "expected a list of next hops")]
    [InlineData("to: 198.18.9.0/24\n  protocol: tcpp", "protocol", "invalid protocol 'tcpp': expected tcp, udp, sctp or a number 0-255")]
    [InlineData("to: 198.18.9.0/24\n  protocol: 1\n  port: 53", "port", "a port needs protocol tcp, udp or sctp (or none), not icmp")]
    [InlineData("to: 198.18.9.0/24\n  port: 65536", "port", "invalid port '65536'")]
    [InlineData("to: 198.18.9.0/24\n  name: a b", "name", "invalid service name 'a b'")]
    public void BadServicesAreRefusedAtTheirField(string service, string field, string message)
    {
        string yaml = "services:\n  - " + service.Replace("\n", "\n  ");
        if (!service.Contains("nexthops"))
            yaml += "\n    nexthops:\n      - interface: up1";
        var setup = Configure(yaml);

        Assert.Empty(setup.Entries);
        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal($"{Service0}.{field}", node.Path);
        Assert.Contains(message, error);
    }
}
