using PluginHost.Tests.Support;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Pipelines;
using PluginHost.Plugins.Shared;
using Xunit;

namespace PluginHost.Tests.Plugins.Shared;

/// <summary>
/// SourcePolicy's routes file (large tables), the compact EntryTable path it uses, and the routes-file cache the
/// source-route plugins share (plugins/Shared, linked here as source).
/// </summary>
[Trait("Category", "Unit")]
public sealed class RoutesFileTests(SourcePolicyFixture fixture) : IClassFixture<SourcePolicyFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-routes-").FullName;
    private readonly FakeStageContext _context = FakeStageContext.Default();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private StageSetup Configure(string file, string routes = "[]")
    {
        File.WriteAllText(Path.Combine(_dir, "routes.txt"), file);
        return ConfigureUnchanged(routes);
    }

    // Configure again with the routes file as it is.
    private StageSetup ConfigureUnchanged(string routes = "[]")
    {
        var settings = PluginFixture.Settings("SourcePolicy", $"routesFile: {Path.Combine(_dir, "routes.txt")}\nroutes: {routes}");
        return fixture.Plugin.Configure(settings, _context);
    }

    [Fact]
    public void FileRoutesBecomeOneTableWhoseBytesMatchTheMapLayout()
    {
        var setup = Configure("""
            # source routes
            198.18.1.0/24 up1 198.18.2.2
            198.18.9.7/32   up2        # no next hop
            """);

        Assert.Empty(_context.Errors);
        var table = Assert.Single(setup.Tables);
        Assert.Equal(2, table.Count);
        var map = new StageMap(0, "T-0", Assert.Single(fixture.Plugin.Maps));
        var packed = new PackedEntries(map.Key.Size, map.Value.Size);
        for (int i = 0; i < table.Count; i++)
            packed.Add(map.Key, map.Key.NumberFields(table.KeyFields), map.Value, map.Value.NumberFields(table.ValueFields), table.Row(i));
        // prefixlen 24 (host order) + 198.18.1.0 (network order); ifindex 7 + 198.18.2.2
        Assert.Equal("18000000C6120100", Convert.ToHexString(packed.Key(0)));
        Assert.Equal("07000000C6120202", Convert.ToHexString(packed.Value(0)));
        Assert.Equal("20000000C6120907", Convert.ToHexString(packed.Key(1)));
        Assert.Equal("0800000000000000", Convert.ToHexString(packed.Value(1)));
    }

    // A runtime route change re-validates the stage: an unchanged routes file is not read again, and the same table
    // lets the host skip encoding it again.
    [Fact]
    public void AnUnchangedFileGivesBackTheSameTableAndAChangedOneIsReadAgain()
    {
        var first = Assert.Single(Configure("198.18.1.0/24 up1\n").Tables);
        var again = Assert.Single(ConfigureUnchanged("[{ from: 10.9.0.0/16, interface: up2 }]").Tables);
        File.WriteAllText(Path.Combine(_dir, "routes.txt"), "198.18.1.0/24 up2\n198.18.2.0/24 up1\n");
        File.SetLastWriteTimeUtc(Path.Combine(_dir, "routes.txt"), DateTime.UtcNow.AddSeconds(1));
        var changed = Assert.Single(ConfigureUnchanged().Tables);

        Assert.Empty(_context.Errors);
        Assert.Same(first, again);
        Assert.NotSame(first, changed);
        Assert.Equal(2, changed.Count);
    }

    // More routes than the map holds is a configuration error, not a kernel error half-way through the write.
    [Fact]
    public void MoreRoutesThanTheMapHoldsAreRefused()
    {
        var text = new System.Text.StringBuilder();
        for (int i = 0; i < (1 << 20) + 1; i++)
            text.Append(Ipv4Text.ToAddress((uint)i << 8)).Append("/24 up1\n");

        Configure(text.ToString());

        var (node, error) = Assert.Single(_context.Errors);
        Assert.EndsWith(".routesFile", node.Path);
        Assert.Equal($"{Path.Combine(_dir, "routes.txt")}:1048577: more than 1,048,576 routes: at most 1,048,576 per stage (the rest is not read)", error);
    }

    [Fact]
    public void AFileWithErrorsIsReportedEveryTime()
    {
        Configure("198.18.1.1/24 up1\n");
        ConfigureUnchanged();

        Assert.Equal(2, _context.Errors.Count);
        Assert.All(_context.Errors, e => Assert.Contains("host bits are set", e.Message));
    }

    [Fact]
    public void BadLinesAreReportedWithFileAndLineAndNothingIsKept()
    {
        Configure("""
            198.18.1.0/24 up1
            198.18.1.5/24 up1
            010.0.0.0/8 up1
            198.18.2.0/24 up9
            198.18.3.0/24 up1 banana
            198.18.1.0/24 up2
            just-one-word
            198.18.4.0/24 up1 224.0.0.5
            """);

        var messages = _context.Errors.Select(e => e.Message).ToList();
        string file = Path.Combine(_dir, "routes.txt");
        Assert.Equal(7, messages.Count);
        Assert.Contains($"{file}:2: invalid prefix (field 1): host bits are set (did you mean 198.18.1.0/24?)", messages);
        Assert.Contains($"{file}:3: invalid prefix (field 1)", messages);
        Assert.Contains($"{file}:4: no interface named (field 2)", messages);
        Assert.Contains($"{file}:5: invalid next hop (field 3): expected a unicast IPv4 address", messages);
        Assert.Contains($"{file}:6: duplicate prefix 198.18.1.0/24 (first given at line 1)", messages);
        Assert.Contains($"{file}:7: expected 'PREFIX INTERFACE [VIA]', got 1 field", messages);
        Assert.Contains($"{file}:8: invalid next hop (field 3): expected a unicast IPv4 address", messages);
    }

    // A canary goes where the datapath sends it: a longer prefix in the routes file wins over the route's own.
    [Fact]
    public void ACanaryExpectsTheRoutesFilesLongerPrefix()
    {
        var setup = Configure("198.18.0.0/24 up2\n", "[{ from: 198.18.0.0/16, interface: up1 }]");

        Assert.Empty(_context.Errors);
        var canary = Assert.Single(setup.Canaries);
        Assert.Equal((CanaryVerdict.Redirect, 8), (canary.Expect, canary.RedirectIfindex));
    }

    [Fact]
    public void ConfigRouteRepeatingAFilePrefixIsRefused()
    {
        Configure("198.18.1.0/24 up1\n", "[{ from: 198.18.1.0/24, interface: up2 }]");

        var (node, message) = Assert.Single(_context.Errors);
        Assert.Equal("pipelines[0].stages[0].settings.routes[0].from", node.Path);
        Assert.Contains("also in the routes file, line 1", message);
    }

    // An unchanged file is parsed once, so a runtime route change (route add, route6 add) does not read it again.
    [Fact]
    public void TheCacheReadsAFileOnceWhileItAndItsInterfacesAreUnchanged()
    {
        string file = Path.Combine(_dir, "routes6.txt");
        File.WriteAllText(file, "2001:db8:1::/48 up1\n2001:db8:2::/48 up2 fe80::2\n");
        var cache = new RoutesFileCache(RouteFamily.Ipv6, "routes");
        var node = new SettingsNode("x.routesFile", 1, SettingsKind.Scalar, file);
        var key = (Ipv6Text.Number(System.Net.IPAddress.Parse("2001:db8:1::")), 48);

        var (first, lines) = cache.Read(node, _context);
        var (again, _) = cache.Read(node, _context);
        // up1 now has another ifindex (an interface deleted and created again): the file is read again.
        var (renumbered, relines) = cache.Read(node, new FakeStageContext(new Dictionary<string, int> { ["up1"] = 9, ["up2"] = 8 }));

        Assert.Empty(_context.Errors);
        Assert.Equal(2, cache.Reads);
        Assert.Same(first, again);
        Assert.NotSame(first, renumbered);
        Assert.Equal((1, 7), lines[key]);
        Assert.Equal((1, 9), relines[key]);
    }

    [Fact]
    public void TheCacheReadsAFileWithErrorsEveryTime()
    {
        File.WriteAllText(Path.Combine(_dir, "routes.txt"), "198.18.1.1/24 up1\n");
        var cache = new RoutesFileCache(RouteFamily.Ipv4, "routes");
        var node = new SettingsNode("x.routesFile", 1, SettingsKind.Scalar, Path.Combine(_dir, "routes.txt"));

        cache.Read(node, _context);
        cache.Read(node, _context);

        Assert.Equal(2, cache.Reads);
        Assert.Equal(2, _context.Errors.Count);
    }

    [Fact]
    public void MissingFileIsAnError()
    {
        var settings = PluginFixture.Settings("SourcePolicy", "routesFile: no-such-routes.txt");
        fixture.Plugin.Configure(settings, _context);

        Assert.Contains("routes file '/etc/ph/no-such-routes.txt' does not exist", Assert.Single(_context.Errors).Message);
    }

    [Fact]
    public void EntryTableRefusesNumbersThatDoNotFit()
    {
        var layout = StructLayout.Compute("k", [new Field("port", FieldType.Be16)]);
        var fields = layout.NumberFields(["port"]);
        var bytes = new byte[layout.Size];

        layout.EncodeNumbers(fields, [443], bytes);
        Assert.Equal("01BB", Convert.ToHexString(bytes));
        Assert.Throws<FormatException>(() => layout.EncodeNumbers(fields, [70000], new byte[layout.Size]));
        Assert.Throws<FormatException>(() => layout.NumberFields(["nope"]));
    }
}
