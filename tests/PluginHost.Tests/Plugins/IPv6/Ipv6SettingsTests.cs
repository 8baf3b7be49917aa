using System.Net;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Plugins;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.IPv6;

/// <summary>Settings validation of the IPv6 plugin: every refusal names the field and the value.</summary>
[Trait("Category", "Unit")]
public sealed class Ipv6SettingsTests(Ipv6Fixture fixture) : IClassFixture<Ipv6Fixture>
{
    private readonly IRoutingPlugin _plugin = fixture.Plugin;
    private readonly FakeStageContext _context = FakeStageContext.Default();

    private StageSetup Configure(string settingsYaml) => _plugin.Configure(PluginFixture.Settings("IPv6", settingsYaml), _context);

    private static string OneRoute(string from, string iface = "up1", string? via = null) =>
        $"routes:\n  - from: \"{from}\"\n    interface: {iface}" + (via is null ? "" : $"\n    via: \"{via}\"");

    [Fact]
    public void ValidRoutesBecomeLpmEntriesAndCanaries()
    {
        var setup = Configure("""
            routes:
              - from: 2001:db8:1::/48
                interface: up1
                via: fe80::2
              - from: 2001:db8:1:5::7
                interface: up2
              - from: ::/0
                interface: up2
                via: 2001:db8::1
            """);

        Assert.Empty(_context.Errors);
        Assert.Collection(setup.Entries,
            e => AssertRoute(e, 48, "2001:db8:1::", 7, "fe80::2"),
            e => AssertRoute(e, 128, "2001:db8:1:5::7", 8, "::"),
            e => AssertRoute(e, 0, "::", 8, "2001:db8::1"));
        // One canary per route, sent where the longest match says: ::/0's canary uses ::1, which only it covers.
        Assert.Equal([7, 8, 8], setup.Canaries.Select(c => c.RedirectIfindex));
        Assert.All(setup.Canaries, c => Assert.Equal(CanaryVerdict.Redirect, c.Expect));
    }

    private static void AssertRoute(MapEntry entry, int prefixlen, string addr, int ifindex, string nexthop)
    {
        Assert.Equal("routes", entry.Map);
        Assert.Equal(prefixlen, entry.Key["prefixlen"]);
        Assert.Equal(IPAddress.Parse(addr), entry.Key["addr"]);
        Assert.Equal(ifindex, entry.Value["ifindex"]);
        Assert.Equal(IPAddress.Parse(nexthop), entry.Value["nexthop"]);
    }

    [Theory]
    [InlineData("2001:db8:1::1/48", "host bits are set (did you mean 2001:db8:1::/48?)")]
    [InlineData("2001:db8::/129", "expected an IPv6 CIDR")]
    [InlineData("198.18.1.0/24", "use SourcePolicy for IPv4")]
    [InlineData("fe80::/64", "link-local, multicast and unspecified sources are never routed")]
    [InlineData("ff02::/16", "link-local, multicast and unspecified sources are never routed")]
    [InlineData("2001:db8::/48%eth0", "expected an IPv6 CIDR")]
    [InlineData("[2001:db8::1]", "expected an IPv6 CIDR")]
    [InlineData("2001:db8::/048", "expected an IPv6 CIDR")]
    [InlineData("::/128", "link-local, multicast and unspecified sources are never routed")]
    public void BadPrefixesAreRefusedWithTheirPathAndValue(string from, string message)
    {
        var setup = Configure(OneRoute(from));

        Assert.Empty(setup.Entries);
        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal("pipelines[0].stages[0].settings.routes[0].from", node.Path);
        Assert.Contains($"'{from}'", error);
        Assert.Contains(message, error);
    }

    [Theory]
    [InlineData("198.18.2.2", "expected an IPv6 address")]
    [InlineData("ff02::2", "must be a unicast address")]
    [InlineData("fe80::2%up1", "no zone index")]
    public void BadNextHopsAreRefused(string via, string message)
    {
        Configure(OneRoute("2001:db8::/32", via: via));

        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal("pipelines[0].stages[0].settings.routes[0].via", node.Path);
        Assert.Contains(message, error);
    }

    [Fact]
    public void DuplicatePrefixesAndUnknownInterfacesAreRefused()
    {
        var setup = Configure("""
            routes:
              - from: 2001:db8::/32
                interface: up1
              - from: 2001:db8:0::/32
                interface: up2
              - from: 2001:db9::/32
                interface: nope0
            """);

        Assert.Single(setup.Entries);
        Assert.Collection(_context.Errors,
            e => Assert.Contains("duplicate prefix 2001:db8::/32 (first given at pipelines[0].stages[0].settings.routes[0].from)", e.Message),
            e => Assert.Equal("pipelines[0].stages[0].settings.routes[2].interface", e.Node.Path));
    }

    [Fact]
    public void ARoutesFileBecomesATableWhoseBytesMatchTheMapLayout()
    {
        string dir = Directory.CreateTempSubdirectory("pluginhost-routes6-").FullName;
        try
        {
            string file = Path.Combine(dir, "routes6.txt");
            File.WriteAllText(file, "# IPv6 sources\n2001:db8:1::/48 up1 fe80::2\n2001:db8:2::7 up2\nfe80::/64 up1\n2001:db8:1::/48 up2\n");

            var setup = Configure($"routesFile: {file}");

            Assert.Collection(_context.Errors,
                e => Assert.Contains("routes6.txt:4: invalid prefix (field 1): link-local, multicast and unspecified sources are never routed", e.Message),
                e => Assert.Contains("routes6.txt:5: duplicate prefix 2001:db8:1::/48 (first given at line 2)", e.Message));
            var table = Assert.Single(setup.Tables);
            var map = new PluginHost.Compose.StageMap(0, "T-0", Assert.Single(_plugin.Maps));
            var packed = new PluginHost.Pipelines.PackedEntries(map.Key.Size, map.Value.Size);
            for (int i = 0; i < table.Count; i++)
                packed.Add(map.Key, map.Key.NumberFields(table.KeyFields), map.Value, map.Value.NumberFields(table.ValueFields), table.Row(i));
            // prefixlen 48 (host order) + 2001:db8:1:: (network order); ifindex 7 + fe80::2
            Assert.Equal("3000000020010DB8000100000000000000000000", Convert.ToHexString(packed.Key(0)));
            Assert.Equal("07000000FE800000000000000000000000000002", Convert.ToHexString(packed.Value(0)));
            Assert.Equal("8000000020010DB8000200000000000000000007", Convert.ToHexString(packed.Key(1)));
            Assert.Equal("0800000000000000000000000000000000000000", Convert.ToHexString(packed.Value(1)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // A routes file rewritten behind the plugin's back with the same size and time of writing is not read again: after a
    // route6 add the plugin hands back the table it parsed first (reading the file again would give 2001:db8:2::/48).
    [Fact]
    public void Route6AddIsServedFromTheCachedRoutesFile()
    {
        WithRoutesFile(file =>
        {
            File.WriteAllText(file, "2001:db8:1::/48 up1\n");
            var written = File.GetLastWriteTimeUtc(file);
            var first = Assert.Single(Configure($"routesFile: {file}").Tables);
            File.WriteAllText(file, "2001:db8:2::/48 up1\n");
            File.SetLastWriteTimeUtc(file, written);

            // What the host does for 'route6 add': the stage's settings with the new route, validated again.
            var added = Configure($"routesFile: {file}\nroutes: [{{ from: \"2001:db8:9::/48\", interface: up2 }}]");

            Assert.Empty(_context.Errors);
            Assert.Same(first, Assert.Single(added.Tables));
            Assert.Equal(0x20010DB800010000UL, added.Tables[0].Row(0)[1]); // addr.hi: still 2001:db8:1::
            Assert.Single(added.Entries);
        });
    }

    [Fact]
    public void AChangedRoutesFileIsReadAgain()
    {
        WithRoutesFile(file =>
        {
            File.WriteAllText(file, "2001:db8:1::/48 up1\n");
            var first = Assert.Single(Configure($"routesFile: {file}").Tables);
            File.WriteAllText(file, "2001:db8:1::/48 up2\n2001:db8:2::/48 up1\n");
            File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddSeconds(1));

            var changed = Assert.Single(Configure($"routesFile: {file}").Tables);

            Assert.Empty(_context.Errors);
            Assert.NotSame(first, changed);
            Assert.Equal(2, changed.Count);
        });
    }

    private static void WithRoutesFile(Action<string> test)
    {
        string dir = Directory.CreateTempSubdirectory("pluginhost-routes6-").FullName;
        try
        {
            test(Path.Combine(dir, "routes6.txt"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
