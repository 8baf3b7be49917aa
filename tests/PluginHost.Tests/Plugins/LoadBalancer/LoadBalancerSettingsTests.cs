using PluginHost.Tests.Support;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>Settings validation of LoadBalancer, and the slot table its weights become.</summary>
[Trait("Category", "Unit")]
public sealed class LoadBalancerSettingsTests(LoadBalancerFixture fixture) : IClassFixture<LoadBalancerFixture>
{
    private const string Service0 = "pipelines[0].stages[0].settings.services[0]";

    private readonly IRoutingPlugin _plugin = fixture.Plugin;
    private readonly FakeStageContext _context = FakeStageContext.Default();

    private StageSetup Configure(string settingsYaml) => _plugin.Configure(PluginFixture.Settings("LoadBalancer", settingsYaml), _context);

    [Fact]
    public void WeightsBecomeTheirShareOfTheSlotsInterleaved()
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
        var slots = setup.Entries.Where(e => e.Map == "slots").OrderBy(e => (int)e.Key["slot"]).Select(e => (int)e.Value["ifindex"]).ToList();
        Assert.Equal(256, slots.Count);
        Assert.Equal(192, slots.Count(i => i == 7));
        Assert.Equal([7, 7, 8, 7], slots.Take(4)); // interleaved, not in blocks
        var service = Assert.Single(setup.Entries, e => e.Map == "services");
        Assert.Equal((24, 0, 0), ((int)service.Key["prefixlen"], (int)service.Value["group"], (int)service.Value["by_source"]));
        Assert.Equal(2, setup.Canaries.Count);
        Assert.Equal(256L, setup.Constants["slots"]);
    }

    [Theory]
    [InlineData("to: 198.18.9.1/24", "to", "host bits are set (did you mean 198.18.9.0/24?)")]
    [InlineData("to: 198.18.9.0/24\n  hash: random", "hash", "invalid hash 'random'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      weight: 0", "nexthops[0].weight", "invalid weight '0'")]
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
