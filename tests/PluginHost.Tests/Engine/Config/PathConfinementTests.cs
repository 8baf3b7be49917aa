using PluginHost.Config;
using PluginHost.Pipelines;
using PluginHost.Plugins;
using PluginHost.TestSupport;
using Xunit;

namespace PluginHost.Tests.Engine.Config;

/// <summary>
/// Issue 11: paths from settings and runtime commands stay inside the configuration's directory or allowedPaths, symlinks
/// resolved. A member of api.group once read /etc/shadow through <c>route load</c>.
/// </summary>
[Trait("Category", "Unit")]
public sealed class PathConfinementTests : IDisposable
{
    private readonly string _dir = PathConfinement.RealPath(Directory.CreateTempSubdirectory("pluginhost-confine-").FullName);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string ConfigDir => Directory.CreateDirectory(Path.Combine(_dir, "etc")).FullName;

    // A configuration in ConfigDir with one SourcePolicy stage on lo reading routesFile; routesFile is on line 9 (with no extra line).
    private HostConfig Config(string routesFile, string extra = "") => ConfigLoader.Parse($"""
        pluginsDirectory: {Repo.PluginsDirectory}
        pipelines:
          - name: a
            interface: lo
            direction: ingress
            stages:
              - plugin: SourcePolicy
                settings:
                  routesFile: {routesFile}
        {extra}
        """, Path.Combine(ConfigDir, "config.yaml"));

    [Fact]
    public void RelativeAndAbsolutePathsInsideTheConfigurationsDirectoryResolve()
    {
        var confinement = new PathConfinement(ConfigDir, []);

        Assert.Equal(Path.Combine(ConfigDir, "tables", "a.txt"), confinement.Resolve("tables/a.txt"));
        Assert.Equal(Path.Combine(ConfigDir, "b.txt"), confinement.Resolve(Path.Combine(ConfigDir, "b.txt")));
        Assert.Equal(ConfigDir, confinement.Resolve("."));
    }

    [Theory]
    [InlineData("/etc/shadow")]
    [InlineData("../outside.txt")]
    [InlineData("tables/../../outside.txt")]
    public void APathOutsideIsRefusedNamingTheConfinement(string path)
    {
        var e = Assert.Throws<UnauthorizedAccessException>(() => new PathConfinement(ConfigDir, []).Resolve(path));

        Assert.StartsWith(path, e.Message);
        Assert.EndsWith($"is outside the allowed directories ({ConfigDir}); allow it with allowedPaths in the configuration", e.Message);
    }

    [Fact]
    public void ASymlinkInsidePointingOutsideIsOutside()
    {
        File.CreateSymbolicLink(Path.Combine(ConfigDir, "innocent.txt"), "/etc/shadow");
        Directory.CreateSymbolicLink(Path.Combine(ConfigDir, "tables"), "/etc");

        var file = Assert.Throws<UnauthorizedAccessException>(() => new PathConfinement(ConfigDir, []).Resolve("innocent.txt"));
        var dir = Assert.Throws<UnauthorizedAccessException>(() => new PathConfinement(ConfigDir, []).Resolve("tables/shadow"));

        Assert.StartsWith("innocent.txt (it resolves to /etc/shadow) is outside", file.Message);
        Assert.StartsWith("tables/shadow (it resolves to /etc/shadow) is outside", dir.Message);
    }

    // ".." after a symlink goes up from where the link leads, as the kernel does, not lexically.
    [Fact]
    public void DotDotIsTakenAfterTheSymlink()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "elsewhere", "sub"));
        Directory.CreateSymbolicLink(Path.Combine(ConfigDir, "link"), Path.Combine(_dir, "elsewhere", "sub"));

        Assert.Throws<UnauthorizedAccessException>(() => new PathConfinement(ConfigDir, []).Resolve("link/../routes.txt"));
        Assert.Equal(Path.Combine(_dir, "elsewhere", "routes.txt"),
            new PathConfinement(ConfigDir, [Path.Combine(_dir, "elsewhere")]).Resolve("link/../routes.txt"));
    }

    [Fact]
    public void AllowedPathsAllowMore()
    {
        string tables = Directory.CreateDirectory(Path.Combine(_dir, "srv-tables")).FullName;
        var confinement = new PathConfinement(ConfigDir, [tables]);

        Assert.Equal(Path.Combine(tables, "big.txt"), confinement.Resolve(Path.Combine(tables, "big.txt")));
        // A sibling whose name starts the same is not inside.
        Assert.Throws<UnauthorizedAccessException>(() => confinement.Resolve(tables + "-evil/big.txt"));
    }

    // The whole way: a configuration naming /etc/shadow is refused at its field, naming the confinement and showing none of it.
    [Fact]
    public void ARoutesFileOutsideIsAConfigErrorThatShowsNothingOfIt()
    {
        var config = Config("/etc/shadow");
        using var catalog = PluginCatalog.Load(config.PluginsDirectory, PluginCatalog.NamesIn(config));

        var e = Assert.Throws<ConfigException>(() => PipelinePlanner.Plan(config, catalog));

        var error = Assert.Single(e.Errors);
        Assert.Equal(("pipelines[0].stages[0].settings.routesFile", 9), (error.FieldPath, error.Line));
        Assert.Equal($"routes file /etc/shadow is outside the allowed directories ({ConfigDir}); allow it with allowedPaths in the configuration", error.Message);
        Assert.DoesNotContain("root:", e.Message);
    }

    [Fact]
    public void ARoutesFileInAnAllowedDirectoryIsRead()
    {
        string tables = Directory.CreateDirectory(Path.Combine(_dir, "tables")).FullName;
        File.WriteAllText(Path.Combine(tables, "routes.txt"), "198.18.1.0/24 lo\n");
        var config = Config($"{tables}/routes.txt", $"allowedPaths: [{tables}]");
        using var catalog = PluginCatalog.Load(config.PluginsDirectory, PluginCatalog.NamesIn(config));

        var planned = Assert.Single(PipelinePlanner.Plan(config, catalog));

        Assert.Equal(1, planned.EntryCount);
    }
}
