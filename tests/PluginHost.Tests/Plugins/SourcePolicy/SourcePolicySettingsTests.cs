using PluginHost.Tests.Support;
using System.Net;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Plugins.SourcePolicy;

/// <summary>Settings validation of the real SourcePolicy plugin, loaded from its drop-in directory.</summary>
[Trait("Category", "Unit")]
public sealed class SourcePolicySettingsTests(SourcePolicyFixture fixture) : IClassFixture<SourcePolicyFixture>
{
    private const string RoutesPath = "pipelines[0].stages[0].settings.routes";

    // The settings block starts on line 8 of the generated file.
    private const int FirstSettingsLine = 8;

    private readonly IRoutingPlugin _plugin = fixture.Plugin;
    private readonly FakeStageContext _context = FakeStageContext.Default();

    private static SettingsNode Settings(string settingsYaml) => PluginFixture.Settings("SourcePolicy", settingsYaml);

    private StageSetup Configure(string settingsYaml) => _plugin.Configure(Settings(settingsYaml), _context);

    private (SettingsNode Node, string Message) SingleError(string settingsYaml)
    {
        var setup = Configure(settingsYaml);
        Assert.Empty(setup.Entries);
        return Assert.Single(_context.Errors);
    }

    private static string OneRoute(string from, string iface = "up1", string? via = null) =>
        $"routes:\n  - from: \"{from}\"\n    interface: {iface}" + (via is null ? "" : $"\n    via: \"{via}\"");

    [Fact]
    public void ValidRoutesBecomeLpmEntries()
    {
        var setup = Configure("""
            routes:
              - from: 198.18.1.0/24
                interface: up1
                via: 198.18.2.2
              - from: 198.18.1.20/32
                interface: up2
              - from: 10.0.0.7
                interface: up1
              - from: 0.0.0.0/0
                interface: up2
                via: 192.0.2.1
            """);

        Assert.Empty(_context.Errors);
        Assert.Empty(setup.Constants);
        Assert.Collection(setup.Entries,
            e => AssertRoute(e, 24, "198.18.1.0", 7, "198.18.2.2"),
            e => AssertRoute(e, 32, "198.18.1.20", 8, "0.0.0.0"),
            e => AssertRoute(e, 32, "10.0.0.7", 7, "0.0.0.0"),
            e => AssertRoute(e, 0, "0.0.0.0", 8, "192.0.2.1"));
        Assert.Equal(["up1", "up2", "up1", "up2"], _context.Resolved);
    }

    private static void AssertRoute(MapEntry entry, int prefixlen, string addr, int ifindex, string nexthop)
    {
        Assert.Equal("routes", entry.Map);
        Assert.Equal(["addr", "prefixlen"], entry.Key.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(prefixlen, Convert.ToInt64(entry.Key["prefixlen"]));
        Assert.Equal(IPAddress.Parse(addr), Assert.IsAssignableFrom<IPAddress>(entry.Key["addr"]));
        Assert.Equal(ifindex, Convert.ToInt64(entry.Value["ifindex"]));
        Assert.Equal(IPAddress.Parse(nexthop), Assert.IsAssignableFrom<IPAddress>(entry.Value["nexthop"]));
    }

    [Fact]
    public void EntriesEncodeToTheBytesTheKernelExpects()
    {
        var setup = Configure(OneRoute("198.18.1.0/24", "up2", "198.18.3.2"));
        var map = new StageMap(0, "T.0", Assert.Single(_plugin.Maps));
        var entry = Assert.Single(setup.Entries);

        Assert.Equal([24, 0, 0, 0, 198, 18, 1, 0], map.Key.Encode(entry.Key));
        Assert.Equal([8, 0, 0, 0, 198, 18, 3, 2], map.Value.Encode(entry.Value));
    }

    [Fact]
    public void MissingOrEmptySettingsAreFine()
    {
        Assert.Empty(_plugin.Configure(new SettingsNode(".s", 3, SettingsKind.Missing), _context).Entries);
        Assert.Empty(Configure("routes: []").Entries);
        Assert.Empty(_context.Errors);
    }

    [Fact]
    public void BadCidrIsRefused()
    {
        var (node, message) = SingleError(OneRoute("10.0.0.300/24"));

        Assert.Equal(RoutesPath + "[0].from", node.Path);
        Assert.Equal(FirstSettingsLine + 1, node.Line);
        Assert.Contains("'10.0.0.300/24'", message);
    }

    [Fact]
    public void HostBitsAreRefusedWithTheNetworkSuggested()
    {
        var (node, message) = SingleError(OneRoute("198.18.1.5/24"));

        Assert.Equal(RoutesPath + "[0].from", node.Path);
        Assert.Contains("'198.18.1.5/24'", message);
        Assert.Contains("host bits", message);
        Assert.Contains("198.18.1.0/24", message);
    }

    [Theory]
    [InlineData("2001:db8::/32")]
    [InlineData("::ffff:198.18.1.0/120")]
    public void Ipv6PrefixIsRefused(string prefix)
    {
        var (node, message) = SingleError(OneRoute(prefix));

        Assert.Equal(RoutesPath + "[0].from", node.Path);
        Assert.Contains($"'{prefix}'", message);
    }

    [Fact]
    public void UnknownInterfaceCarriesTheContextsReason()
    {
        var (node, message) = SingleError(OneRoute("198.18.1.0/24", iface: "eth9"));

        Assert.Equal(RoutesPath + "[0].interface", node.Path);
        Assert.Equal(FirstSettingsLine + 2, node.Line);
        Assert.Equal("no interface named 'eth9'", message);
    }

    [Theory]
    [InlineData("banana", "expected an IPv4 address")]
    [InlineData("224.0.0.1", "unicast")]
    [InlineData("239.255.255.250", "unicast")]
    [InlineData("255.255.255.255", "unicast")]
    [InlineData("0.0.0.0", "unicast")]
    [InlineData("198.18.3.0/24", "expected an IPv4 address")]
    [InlineData("2001:db8::1", "expected an IPv4 address")]
    public void BadNextHopIsRefused(string via, string reason)
    {
        var (node, message) = SingleError(OneRoute("198.18.1.0/24", via: via));

        Assert.Equal(RoutesPath + "[0].via", node.Path);
        Assert.Equal(FirstSettingsLine + 3, node.Line);
        Assert.Contains($"'{via}'", message);
        Assert.Contains(reason, message);
    }

    // IPAddress.TryParse reads "10.1" as 10.0.0.1, "3" as 0.0.0.3 and "010" as octal: a typo must not become a next hop.
    [Theory]
    [InlineData("10.1")]
    [InlineData("3")]
    [InlineData("0x0a000001")]
    [InlineData("010.0.0.1")] // octal: 8.0.0.1
    public void ShorthandNextHopIsRefused(string via)
    {
        var (node, _) = SingleError(OneRoute("198.18.1.0/24", via: via));

        Assert.Equal(RoutesPath + "[0].via", node.Path);
    }

    [Theory]
    [InlineData("10.1")]
    [InlineData("10.1/32")]
    [InlineData("167772161/32")]
    [InlineData("010.0.0.0/8")]      // IPAddress.TryParse reads a leading 0 as octal: 8.0.0.0/8
    [InlineData("10.0.0.010")]       // 10.0.0.8
    [InlineData("0x0a.0.0.0/8")]     // hexadecimal: 10.0.0.0/8
    public void ShorthandPrefixIsRefused(string from)
    {
        var (node, _) = SingleError(OneRoute(from));

        Assert.Equal(RoutesPath + "[0].from", node.Path);
    }

    [Fact]
    public void DuplicatePrefixIsReportedOnTheSecondWithTheFirstsPath()
    {
        var setup = Configure("""
            routes:
              - from: 198.18.1.0/24
                interface: up1
              - from: 198.18.1.0/24
                interface: up2
              - from: 198.18.1.7
                interface: up1
              - from: 198.18.1.7/32
                interface: up2
            """);

        Assert.Equal(2, setup.Entries.Count);
        Assert.Collection(_context.Errors,
            e =>
            {
                Assert.Equal(RoutesPath + "[1].from", e.Node.Path);
                Assert.Equal(FirstSettingsLine + 3, e.Node.Line);
                Assert.Contains("198.18.1.0/24", e.Message);
                Assert.Contains("routes[0].from", e.Message);
            },
            e =>
            {
                Assert.Equal(RoutesPath + "[3].from", e.Node.Path);
                Assert.Contains("198.18.1.7/32", e.Message);
                Assert.Contains("routes[2].from", e.Message);
            });
    }

    [Fact]
    public void UnknownFieldIsNamedAndTheMissingOneToo()
    {
        Configure("""
            routes:
              - from: 198.18.1.0/24
                interfce: up1
            """);

        Assert.Collection(_context.Errors,
            e =>
            {
                Assert.Equal(RoutesPath + "[0].interfce", e.Node.Path);
                Assert.Equal(FirstSettingsLine + 2, e.Node.Line);
                Assert.Contains("'interfce'", e.Message);
                Assert.Contains("interface", e.Message.Replace("'interfce'", ""));
            },
            e => Assert.Equal(RoutesPath + "[0].interface", e.Node.Path));
    }

    [Fact]
    public void UnknownSettingsKeyIsNamed()
    {
        Configure("routes: []\nroute: []");

        var (node, message) = Assert.Single(_context.Errors);
        Assert.Equal("pipelines[0].stages[0].settings.route", node.Path);
        Assert.Equal(FirstSettingsLine + 1, node.Line);
        Assert.Contains("'route'", message);
    }

    [Fact]
    public void WrongShapesAreRefused()
    {
        _plugin.Configure(new SettingsNode(".s", 1, SettingsKind.Scalar, "routes"), _context);
        Configure("routes: 198.18.1.0/24");
        Configure("routes:\n  - 198.18.1.0/24");

        Assert.Equal([".s", RoutesPath, RoutesPath + "[0]"], _context.Errors.Select(e => e.Node.Path));
    }

    [Fact]
    public void EveryBadRouteIsReportedOnceAndGoodOnesStillProduceEntries()
    {
        var setup = Configure("""
            routes:
              - from: 10.0.0.300/24
                interface: up1
              - from: 198.18.1.5/24
                interface: up1
              - from: 198.18.2.0/24
                interface: nope
              - from: 198.18.3.0/24
                interface: up1
                via: banana
              - from: 198.18.4.0/24
                interface: up2
            """);

        Assert.Equal([RoutesPath + "[0].from", RoutesPath + "[1].from", RoutesPath + "[2].interface", RoutesPath + "[3].via"],
            _context.Errors.Select(e => e.Node.Path));
        Assert.Equal([FirstSettingsLine + 1, FirstSettingsLine + 3, FirstSettingsLine + 6, FirstSettingsLine + 9],
            _context.Errors.Select(e => e.Node.Line));
        var entry = Assert.Single(setup.Entries);
        Assert.Equal(IPAddress.Parse("198.18.4.0"), entry.Key["addr"]);
    }

    [Fact]
    public void ErrorsAreReportedOnTheNodesGivenWhenBuiltByHand()
    {
        var from = new SettingsNode("x.routes[0].from", 41, SettingsKind.Scalar, "198.18.1.1/24");
        var iface = new SettingsNode("x.routes[0].interface", 42, SettingsKind.Scalar, "up2");
        var route = new SettingsNode("x.routes[0]", 41, SettingsKind.Mapping,
            children: new Dictionary<string, SettingsNode> { ["from"] = from, ["interface"] = iface });
        var good = new SettingsNode("x.routes[1]", 43, SettingsKind.Mapping, children: new Dictionary<string, SettingsNode>
        {
            ["from"] = new("x.routes[1].from", 43, SettingsKind.Scalar, "203.0.113.0/24"),
            ["interface"] = new("x.routes[1].interface", 44, SettingsKind.Scalar, "up2"),
        });
        var routes = new SettingsNode("x.routes", 40, SettingsKind.Sequence, items: [route, good]);
        var settings = new SettingsNode("x", 39, SettingsKind.Mapping, children: new Dictionary<string, SettingsNode> { ["routes"] = routes });

        var setup = _plugin.Configure(settings, _context);

        var (node, _) = Assert.Single(_context.Errors);
        Assert.Same(from, node);
        AssertRoute(Assert.Single(setup.Entries), 24, "203.0.113.0", 8, "0.0.0.0");
    }
}
