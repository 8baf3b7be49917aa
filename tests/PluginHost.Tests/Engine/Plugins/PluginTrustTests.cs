using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Config;
using PluginHost.Hosting;
using PluginHost.Interop;
using PluginHost.Plugins;
using PluginHost.TestSupport;
using Xunit;

namespace PluginHost.Tests.Engine.Plugins;

/// <summary>
/// Trust before code runs (issue 11): only the plugins the configuration names are loaded, and only from root-owned files
/// nobody else can write; one broken plugin fails only the configuration that uses it. The tests run as root; the marker
/// plugin's constructor appends to the file PLUGINHOST_TEST_MARKER names, so "it never ran" is checked, not assumed.
/// </summary>
[Trait("Category", "Unit")]
[Collection(nameof(PluginTrustTests))] // PLUGINHOST_TEST_MARKER is process-wide
public sealed class PluginTrustTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("ph-trust-").FullName;
    private readonly string _marker;
    private readonly string _plugins;

    public PluginTrustTests()
    {
        File.SetUnixFileMode(_work, (UnixFileMode)0b111_101_101);
        _plugins = Directory.CreateDirectory(Path.Combine(_work, "plugins")).FullName;
        _marker = Path.Combine(_work, "constructed");
        Environment.SetEnvironmentVariable("PLUGINHOST_TEST_MARKER", _marker);
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("PLUGINHOST_TEST_MARKER", null);
        Directory.Delete(_work, recursive: true);
    }

    private static string Hostile(string name) => Path.Combine(Repo.Root, "artifacts", "test-plugins", "hostile", name);

    private string Use(string source, string? into = null)
    {
        HostYaml.CopyPlugin(source, into ?? _plugins);
        return Path.Combine(into ?? _plugins, Path.GetFileName(source));
    }

    private static void Mode(string path, int mode) => File.SetUnixFileMode(path, (UnixFileMode)mode);

    private static void Owner(string path, int uid) => Assert.Equal(0, Libc.Chown(path, uid, uid));

    private bool Constructed => File.Exists(_marker);

    [Fact]
    public void TheMarkerPluginRunsWhenTrusted()
    {
        Use(Hostile("MarkerPolicy"));

        using var catalog = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);

        Assert.Empty(catalog.Errors);
        Assert.Contains("MarkerPolicy", catalog.Plugins.Keys);
        Assert.True(Constructed); // so its absence below means something
    }

    [Fact]
    public void ADllInA0777FolderIsRefusedAndNeverRuns()
    {
        string folder = Use(Hostile("MarkerPolicy"));
        Mode(folder, 0x1FF); // 0777

        using var catalog = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);

        Assert.Empty(catalog.Plugins);
        Assert.Equal($"load plugin MarkerPolicy: {folder} is writable by group and others (mode 0777, owner 0): {PluginTrust.PluginRule}",
            catalog.Failed["MarkerPolicy"]);
        Assert.False(Constructed);
    }

    [Fact]
    public void AWorldWritableDllIsRefusedNamingIt()
    {
        string dll = Path.Combine(Use(Hostile("MarkerPolicy")), "MarkerPolicy.dll");
        Mode(dll, 0x1B2); // 0662
        Owner(dll, 1000);

        using var catalog = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);

        Assert.Equal($"load plugin MarkerPolicy: {dll} is owned by uid 1000, not root (mode 0662, owner 1000): {PluginTrust.PluginRule}",
            catalog.Failed["MarkerPolicy"]);
        Mode(dll, 0x1A6); // 0646: root's again, but writable by others
        Owner(dll, 0);
        using var again = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);
        Assert.Contains($"{dll} is writable by others (mode 0646, owner 0)", again.Failed["MarkerPolicy"]);
        Assert.False(Constructed);
    }

    [Fact]
    public void AFolderOwnedByAnotherUserIsRefused()
    {
        string folder = Use(Hostile("MarkerPolicy"));
        Owner(folder, 1000);

        using var catalog = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);

        Assert.Equal($"load plugin MarkerPolicy: {folder} is owned by uid 1000, not root (mode 0755, owner 1000): {PluginTrust.PluginRule}",
            catalog.Failed["MarkerPolicy"]);
        Assert.False(Constructed);
    }

    [Fact]
    public void AnotherUsersFileInsideTheFolderIsRefused()
    {
        string folder = Use(Hostile("MarkerPolicy"));
        string deps = Path.Combine(folder, "MarkerPolicy.deps.json"); // it steers what the loader loads
        Owner(deps, 1000);

        using var catalog = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);

        Assert.Contains($"{deps} is owned by uid 1000", catalog.Failed["MarkerPolicy"]);
        Assert.False(Constructed);
    }

    [Fact]
    public void AWritablePluginsDirectoryRefusesEveryPluginInIt()
    {
        Use(Hostile("MarkerPolicy"));
        Mode(_plugins, 0x1FD); // 0775

        using var catalog = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);

        Assert.Equal($"load plugin MarkerPolicy: {_plugins} is writable by group (mode 0775, owner 0): {PluginTrust.DirectoryRule}",
            catalog.Failed["MarkerPolicy"]);
        Assert.False(Constructed);
    }

    // /tmp is 1777: anyone may create entries, but only an entry's owner may rename or remove it. So a sticky, root-owned,
    // world-writable directory above the plugins is accepted when the entry in it is root's; without the sticky bit,
    // another user could move the root-owned directory aside and put their own in its place.
    [Fact]
    public void AWritableParentIsAcceptedOnlyWhenStickyAndWhatIsInItIsRoots()
    {
        string parent = Directory.CreateDirectory(Path.Combine(_work, "shared")).FullName;
        string plugins = Directory.CreateDirectory(Path.Combine(parent, "plugins")).FullName;
        Use(Hostile("MarkerPolicy"), plugins);

        Mode(parent, 0x1FF); // 0777, not sticky
        using (var refused = PluginCatalog.Load(plugins, ["MarkerPolicy"]))
            Assert.Equal($"load plugin MarkerPolicy: {parent} is writable by group and others (mode 0777, owner 0): {PluginTrust.DirectoryRule}",
                refused.Failed["MarkerPolicy"]);
        Assert.False(Constructed);

        Mode(parent, 0x3FF); // 1777, like /tmp
        Owner(plugins, 1000);
        using (var notRoots = PluginCatalog.Load(plugins, ["MarkerPolicy"]))
            Assert.Contains($"{plugins} is owned by uid 1000", notRoots.Failed["MarkerPolicy"]);
        Assert.False(Constructed);

        Owner(plugins, 0);
        using var accepted = PluginCatalog.Load(plugins, ["MarkerPolicy"]);
        Assert.Empty(accepted.Errors);
        Assert.True(Constructed);
    }

    [Fact]
    public void ASymlinkIsJudgedByItsRealTarget()
    {
        string elsewhere = Directory.CreateDirectory(Path.Combine(_work, "elsewhere")).FullName;
        string real = Use(Hostile("MarkerPolicy"), elsewhere);
        Mode(real, 0x1FF);
        File.CreateSymbolicLink(Path.Combine(_plugins, "MarkerPolicy"), real);

        using var catalog = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);

        Assert.Contains($"{real} is writable by group and others (mode 0777, owner 0)", catalog.Failed["MarkerPolicy"]);
        Assert.False(Constructed);
    }

    [Fact]
    public void AnUnnamedBadFolderNoLongerMatters()
    {
        Mode(Use(Hostile("MarkerPolicy")), 0x1FF);
        Use(Hostile("ThrowingPolicy"));
        Directory.CreateDirectory(Path.Combine(_plugins, "Garbage"));
        File.WriteAllBytes(Path.Combine(_plugins, "Garbage", "Garbage.dll"), new byte[512]);
        HostYaml.CopyPlugin(Path.Combine(Repo.PluginsDirectory, "SourcePolicy"), _plugins);

        using var catalog = PluginCatalog.Load(_plugins, ["SourcePolicy"]);

        Assert.Equal(["SourcePolicy"], catalog.Plugins.Keys);
        Assert.Empty(catalog.Failed);
        Assert.Equal(["Garbage", "MarkerPolicy", "ThrowingPolicy"], catalog.Unused.Select(u => u.Name));
        Assert.Contains("not a .NET assembly", catalog.Unused[0].Problem);
        Assert.Contains("writable by group and others (mode 0777, owner 0)", catalog.Unused[1].Problem);
        Assert.Null(catalog.Unused[2].Problem); // its Description throws, but nothing of it ran
        Assert.False(Constructed);
    }

    [Fact]
    public void TheAllowListPinsExactDlls()
    {
        string dll = Path.Combine(Use(Hostile("MarkerPolicy")), "MarkerPolicy.dll");
        string hash = PluginTrust.Sha256(dll);
        string list = Path.Combine(_plugins, PluginTrust.AllowListName);
        string other = new('0', 64);

        File.WriteAllText(list, $"# pinned by the operator\n{other}  MarkerPolicy/MarkerPolicy.dll\n");
        using (var mismatch = PluginCatalog.Load(_plugins, ["MarkerPolicy"]))
            Assert.Equal($"load plugin MarkerPolicy: {dll} has sha256 {hash}, but {list} line 2 pins {other}: only the DLLs the allow-list pins are loaded",
                mismatch.Failed["MarkerPolicy"]);
        Assert.False(Constructed);

        File.WriteAllText(list, $"{other}  SourcePolicy/SourcePolicy.dll\n");
        using (var unlisted = PluginCatalog.Load(_plugins, ["MarkerPolicy"]))
            Assert.Contains($"{dll} (sha256 {hash}) is not listed in {list}", unlisted.Failed["MarkerPolicy"]);
        Assert.False(Constructed);

        File.WriteAllText(list, $"{hash}  MarkerPolicy/MarkerPolicy.dll\n");
        Mode(list, 0x1B6); // 0666: anyone could pin their own DLL
        using (var writable = PluginCatalog.Load(_plugins, ["MarkerPolicy"]))
            Assert.Equal($"load plugin MarkerPolicy: {list} is writable by group and others (mode 0666, owner 0): {PluginTrust.AllowListRule}",
                writable.Failed["MarkerPolicy"]);
        Assert.False(Constructed);

        Mode(list, 0x1A4); // 0644
        using var pinned = PluginCatalog.Load(_plugins, ["MarkerPolicy"]);
        Assert.Empty(pinned.Errors);
        Assert.True(Constructed);
    }

    [Fact]
    public void APluginWhosePropertyThrowsFailsToLoadWithWhy()
    {
        Use(Hostile("ThrowingPolicy"));

        using var catalog = PluginCatalog.Load(_plugins, ["ThrowingPolicy"]);

        Assert.Empty(catalog.Plugins);
        Assert.Contains("reading its Description threw InvalidOperationException: description not available", catalog.Failed["ThrowingPolicy"]);
    }

    private HostEngine Engine(string stages)
    {
        string config = Path.Combine(_work, "config.yaml");
        File.WriteAllText(config, HostYaml.Config(_plugins, "/sys/fs/bpf/pluginhost-trust-unused", Path.Combine(_work, "run"), Path.Combine(_work, "cache"),
            HostYaml.Pipeline("p", null, "lo", stages)));
        return new HostEngine(ConfigLoader.Load(config), NullLoggerFactory.Instance);
    }

    [Fact]
    public void ABrokenPluginFailsOnlyTheConfigurationThatUsesItAndIsListedWithItsError()
    {
        Use(Hostile("ThrowingPolicy"));
        Use(Repo.MarkPolicy(1));
        Mode(Use(Hostile("MarkerPolicy")), 0x1FF);

        var good = Engine("      - plugin: MarkPolicy\n");
        Assert.Single(good.Validate()); // the broken and the untrusted folders block nothing
        var listing = good.ListPlugins();
        Assert.Equal([("MarkPolicy", "loaded"), ("MarkerPolicy", "unused"), ("ThrowingPolicy", "unused")], listing.Plugins.Select(p => (p.Name, p.State)));
        good.ReleasePlugins();

        var bad = Engine("      - plugin: MarkPolicy\n      - plugin: ThrowingPolicy\n");
        var error = Assert.Single(Assert.Throws<ConfigException>(() => bad.Validate()).Errors);
        Assert.Equal((11, "pipelines[0].stages[1].plugin"), (error.Line, error.FieldPath)); // located at the stage that uses it
        Assert.Contains("load plugin ThrowingPolicy", error.Message);
        Assert.Contains("Description threw", error.Message);
        var broken = bad.ListPlugins().Plugins.Single(p => p.Name == "ThrowingPolicy"); // no exception: the error is listed
        Assert.Equal("failed", broken.State);
        Assert.Contains("Description threw", broken.Error);
        bad.ReleasePlugins();
        Assert.False(Constructed);
    }
}
