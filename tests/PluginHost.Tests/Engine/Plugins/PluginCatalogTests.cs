using PluginHost.TestSupport;
using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using PluginHost.Contract;
using PluginHost.Plugins;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Plugins;

[Trait("Category", "Unit")]
public sealed class PluginCatalogTests : IDisposable
{
    private readonly string _temp = Path.Combine(Path.GetTempPath(), "ph-catalog-" + Guid.NewGuid().ToString("N"));

    public PluginCatalogTests() => Directory.CreateDirectory(_temp);

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static string SourcePolicyDll => Path.Combine(Repo.PluginsDirectory, "SourcePolicy", "SourcePolicy.dll");

    /// <summary>Copy the built SourcePolicy folder into the temp plugins directory as <paramref name="name"/>/<paramref name="name"/>.dll.</summary>
    private void CopySourcePolicy(string name)
    {
        string folder = Directory.CreateDirectory(Path.Combine(_temp, name)).FullName;
        foreach (var file in Directory.GetFiles(Path.GetDirectoryName(SourcePolicyDll)!))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file).Replace("SourcePolicy", name)));
    }

    [Fact]
    public void FindsSourcePolicyInTheBuildOutput()
    {
        using var catalog = PluginCatalog.Load(Repo.PluginsDirectory, ["SourcePolicy"]);

        Assert.Empty(catalog.Errors);
        var plugin = catalog.Plugins["SourcePolicy"];
        Assert.Equal(Path.GetFullPath(SourcePolicyDll), Path.GetFullPath(plugin.AssemblyPath));
        Assert.Equal("SourcePolicy", plugin.Instance.Name);
        Assert.False(string.IsNullOrWhiteSpace(plugin.Instance.Description));
        Assert.Equal("source_policy.c.sbn", plugin.Instance.Template.FileName);
        Assert.Contains("{{ stage.function }}", plugin.Instance.Template.Text);
        var map = Assert.Single(plugin.Instance.Maps);
        Assert.Equal(("routes", MapKind.LpmTrie), (map.Name, map.Kind));
    }

    // Changing one plugin must not reload the others: unchanged folders move to the new catalog, loaded.
    [Fact]
    public void AReloadTakesUnchangedPluginsOverAndLeavesOnlyTheChangedOnesToRelease()
    {
        void CopyFolder(string source)
        {
            string target = Directory.CreateDirectory(Path.Combine(_temp, Path.GetFileName(source))).FullName;
            foreach (var file in Directory.GetFiles(source))
                File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
        }
        CopyFolder(Path.GetDirectoryName(SourcePolicyDll)!);
        CopyFolder(Repo.MarkPolicy(1));
        var first = PluginCatalog.Load(_temp, ["SourcePolicy", "MarkPolicy"]);
        var sourcePolicy = first.Plugins["SourcePolicy"].Instance;
        var markV1 = first.Plugins["MarkPolicy"].Instance;

        CopyFolder(Repo.MarkPolicy(2));
        using var second = PluginCatalog.Load(_temp, ["SourcePolicy", "MarkPolicy"], reuse: first);

        Assert.Same(sourcePolicy, second.Plugins["SourcePolicy"].Instance);
        Assert.NotSame(markV1, second.Plugins["MarkPolicy"].Instance);
        Assert.Equal(["MarkPolicy"], first.Plugins.Keys);   // what is left to release: the old MarkPolicy only
        Assert.Same(markV1, first.Plugins["MarkPolicy"].Instance);
        first.Dispose();
        Assert.Equal("SourcePolicy", second.Plugins["SourcePolicy"].Instance.Name); // still loaded and usable
    }

    [Fact]
    public void PluginLivesInItsOwnCollectibleContextAndSharesTheContract()
    {
        using var catalog = PluginCatalog.Load(Repo.PluginsDirectory, ["SourcePolicy"]);
        var type = catalog.Plugins["SourcePolicy"].Instance.GetType();

        var context = AssemblyLoadContext.GetLoadContext(type.Assembly)!;
        Assert.NotSame(AssemblyLoadContext.Default, context);
        Assert.True(context.IsCollectible);
        // The contract is the host's own assembly, not a second copy in the plugin's context.
        Assert.Contains(typeof(IRoutingPlugin), type.GetInterfaces());
        Assert.DoesNotContain(context.Assemblies, a => a.GetName().Name == "PluginHost.Contract");
    }

    [Fact]
    public void SameMajorIsAccepted()
    {
        Assert.Null(ContractCheck.Problem("P.dll", new Version(1, 4, 2, 0), new Version(1, 0, 0, 0)));
        Assert.Null(ContractCheck.Problem("P.dll", new Version(1, 0, 0, 0), new Version(1, 9, 0, 0)));
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(1, 2)]
    [InlineData(0, 1)]
    public void OtherMajorIsRefusedNamingBothVersions(int plugin, int host)
    {
        string? problem = ContractCheck.Problem("Old.dll", new Version(plugin, 0, 0, 0), new Version(host, 0, 0, 0));

        Assert.NotNull(problem);
        Assert.Contains("Old.dll", problem);
        Assert.Contains($"contract {plugin}.x", problem);
        Assert.Contains($"contract {host}.x", problem);
    }

    [Fact]
    public void SourcePolicyReferencesContractMajorTwo()
    {
        var version = PluginCatalog.ReferencedContractVersion(SourcePolicyDll);

        Assert.NotNull(version);
        Assert.Equal(2, version.Major);
        Assert.Equal(ContractInfo.Major, version.Major);
    }

    [Fact]
    public void AssemblyWithoutTheContractHasNoVersion()
    {
        Assert.Null(PluginCatalog.ReferencedContractVersion(typeof(FactAttribute).Assembly.Location));
    }

    [Fact]
    public void GarbageDllIsAnErrorNamingTheFileNotACrash()
    {
        Directory.CreateDirectory(Path.Combine(_temp, "Bad"));
        var bytes = new byte[4096];
        new Random(42).NextBytes(bytes);
        File.WriteAllBytes(Path.Combine(_temp, "Bad", "Bad.dll"), bytes);
        CopySourcePolicy("SourcePolicy");

        using var catalog = PluginCatalog.Load(_temp, ["Bad", "SourcePolicy"]);

        var error = Assert.Single(catalog.Errors);
        Assert.Contains(Path.Combine("Bad", "Bad.dll"), error);
        Assert.Equal(error, catalog.Failed["Bad"]);
        Assert.Contains("SourcePolicy", catalog.Plugins.Keys); // one bad plugin does not hide the others
    }

    [Fact]
    public void AFolderNobodyNamesIsNotLoadedAndBlocksNothing()
    {
        Directory.CreateDirectory(Path.Combine(_temp, "Bad"));
        File.WriteAllBytes(Path.Combine(_temp, "Bad", "Bad.dll"), new byte[4096]);
        CopySourcePolicy("SourcePolicy");

        using var catalog = PluginCatalog.Load(_temp, ["SourcePolicy"]);

        Assert.Empty(catalog.Failed);
        Assert.Equal(["SourcePolicy"], catalog.Plugins.Keys);
        var unused = Assert.Single(catalog.Unused);
        Assert.Equal("Bad", unused.Name);
        Assert.Contains("not a .NET assembly", unused.Problem);
        Assert.Contains("unused plugin folder Bad", Assert.Single(catalog.Errors)); // listed, but blocks nothing
    }

    [Fact]
    public void AssemblyThatIsNotAPluginIsAnError()
    {
        Directory.CreateDirectory(Path.Combine(_temp, "Xunit"));
        File.Copy(typeof(FactAttribute).Assembly.Location, Path.Combine(_temp, "Xunit", "Xunit.dll"));

        using var catalog = PluginCatalog.Load(_temp, ["Xunit"]);

        var error = Assert.Single(catalog.Errors);
        Assert.Contains("Xunit.dll", error);
        Assert.Contains("PluginHost.Contract", error);
        Assert.Empty(catalog.Plugins);
    }

    // The configuration names a folder, so the plugin in it must carry that name: SourcePolicy2/SourcePolicy2.dll says 'SourcePolicy'.
    [Fact]
    public void APluginWhoseNameIsNotItsFolderIsRefused()
    {
        CopySourcePolicy("SourcePolicy");
        CopySourcePolicy("SourcePolicy2");

        using var catalog = PluginCatalog.Load(_temp, ["SourcePolicy", "SourcePolicy2"]);

        var error = Assert.Single(catalog.Errors);
        Assert.Contains("SourcePolicy2.dll", error);
        Assert.Contains("'SourcePolicy'", error);
        Assert.EndsWith(Path.Combine("SourcePolicy", "SourcePolicy.dll"), catalog.Plugins["SourcePolicy"].AssemblyPath);
    }

    [Fact]
    public void FoldersWhoseDllIsNamedOtherwiseAreReportedNotSkipped()
    {
        // Issue 14: a folder that did not match its DLL was skipped silently; the operator saw only "unknown plugin".
        Directory.CreateDirectory(Path.Combine(_temp, "DscpRouter"));
        File.WriteAllText(Path.Combine(_temp, "DscpRouter", "DscpRouterPlugin.dll"), "not loaded");
        Directory.CreateDirectory(Path.Combine(_temp, "notes")); // no DLL at all: not a plugin, not reported

        using var catalog = PluginCatalog.Load(_temp, []);
        using var named = PluginCatalog.Load(_temp, ["DscpRouter"]);

        var unused = Assert.Single(catalog.Unused);
        Assert.Equal("DscpRouter", unused.Name);
        Assert.Equal("unused plugin folder DscpRouter (not loaded): holds DscpRouterPlugin.dll but no DscpRouter.dll: " + PluginCatalog.NamingRule,
            Assert.Single(catalog.Errors));
        Assert.Equal($"unknown plugin 'DscpRouter': no DscpRouter/DscpRouter.dll in {_temp} (available: none); DscpRouter/ holds DscpRouterPlugin.dll " +
            "but no DscpRouter.dll: " + PluginCatalog.NamingRule, Assert.Single(named.Errors));
    }

    [Fact]
    public void MissingDirectoryIsAnErrorForThePluginsNamed()
    {
        string missing = Path.Combine(_temp, "nope");

        using var catalog = PluginCatalog.Load(missing, ["SourcePolicy"]);
        using var none = PluginCatalog.Load(missing, []);

        var error = Assert.Single(catalog.Errors);
        Assert.Contains(missing, error);
        Assert.Contains("does not exist", error);
        Assert.Empty(catalog.Plugins);
        Assert.Empty(none.Errors);
    }

    [Fact]
    public void DisposeUnloadsThePlugin()
    {
        var context = LoadUseAndDispose(Repo.PluginsDirectory);

        for (int i = 0; i < 10 && context.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        Assert.False(context.IsAlive, "the plugin's load context is still alive after Dispose and 10 GCs");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference LoadUseAndDispose(string directory)
    {
        var catalog = PluginCatalog.Load(directory, ["SourcePolicy"]);
        var plugin = catalog.Plugins["SourcePolicy"].Instance;
        var context = AssemblyLoadContext.GetLoadContext(plugin.GetType().Assembly)!;
        Assert.True(context.IsCollectible);

        // Use it the way the host does, then copy nothing of it out.
        var settings = PluginFixture.Settings("SourcePolicy", """
            routes:
              - from: 198.18.1.0/24
                interface: up1
                via: 198.18.2.2
            """);
        var fake = FakeStageContext.Default();
        Assert.Single(plugin.Configure(settings, fake).Entries);
        Assert.Empty(fake.Errors);

        var weak = new WeakReference(context);
        catalog.Dispose();
        return weak;
    }
}
