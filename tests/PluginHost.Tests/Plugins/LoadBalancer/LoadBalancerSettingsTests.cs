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
        var entries = Enumerable.Range(0, ring.Count).Select(i => ring.Row(i)[1]).ToList();
        Assert.InRange(entries.Count(b => b == 0), 3060, 3080); // 3/4 of 4,093 = 3,069.75
        Assert.Equal(ring.Count, entries.Count(b => b is 0 or 1));
        var backends = Assert.Single(setup.Tables, t => t.Map == "backends");
        Assert.Equal([7UL, 8UL], Enumerable.Range(0, backends.Count).Select(i => backends.Row(i)[3]));
        var service = Assert.Single(setup.Tables, t => t.Map == "services").Row(0).ToArray();
        Assert.Equal([24UL, 0xC6120900UL, 0UL, 4093UL, 0UL], service);
        Assert.Equal(4096u, setup.MapSizes["ring"]);
        Assert.Equal(2, setup.Canaries.Count);
        Assert.Contains("1 service (0 IPv6), 2 backends", setup.Summary);
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
        var service = Assert.Single(setup.Tables, t => t.Map == "services6").Row(0).ToArray();
        Assert.Equal([48UL, 0x20010db800090000UL, 0UL, 0UL, 1021UL, 0UL], service);
        var ring = Assert.Single(setup.Tables, t => t.Map == "ring");
        Assert.All(Enumerable.Range(0, ring.Count), i => Assert.Equal(0UL, ring.Row(i)[1])); // up2 is drained
        Assert.Equal(0, setup.Tables.Single(t => t.Map == "services").Count);
        Assert.Equal(2, setup.Canaries.Count);
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
    [InlineData("to: 198.18.9.0/24\n  nexthops: []", "nexthops", "expected a list of next hops")]
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
