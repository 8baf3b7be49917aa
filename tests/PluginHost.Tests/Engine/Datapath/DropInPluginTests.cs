using PluginHost.TestSupport;
using PluginHost.Observe;
using System.Runtime.Loader;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Pipelines;
using PluginHost.Plugins;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>A plugin the host never referenced, copied into a fresh directory, runs in the chain.</summary>
[Trait("Category", "Kernel")]
public sealed class DropInPluginTests : IDisposable
{
    private readonly string _plugins = Directory.CreateTempSubdirectory("pluginhost-dropin-").FullName;
    private readonly KernelChain _net = new();

    public void Dispose()
    {
        _net.Dispose();
        Directory.Delete(_plugins, recursive: true);
    }

    [KernelFact]
    public void PluginCopiedIntoADirectoryIsLoadedAndRuns()
    {
        Assert.DoesNotContain(typeof(PluginHost.Hosting.HostEngine).Assembly.GetReferencedAssemblies(), a => a.Name == "SourcePolicy");
        string target = Directory.CreateDirectory(Path.Combine(_plugins, "SourcePolicy")).FullName;
        foreach (var file in Directory.GetFiles(Path.Combine(Repo.PluginsDirectory, "SourcePolicy")))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));

        var yaml = _net.ConfigYaml("""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: out1
            """).Replace($"pluginsDirectory: {Repo.PluginsDirectory}", $"pluginsDirectory: {_plugins}");
        var config = ConfigLoader.Parse(yaml, "/test/config.yaml");
        using var catalog = PluginCatalog.Load(config.PluginsDirectory, PluginCatalog.NamesIn(config));
        Assert.Empty(catalog.Errors);
        var plugin = catalog.Plugins["SourcePolicy"];
        Assert.StartsWith(_plugins, plugin.AssemblyPath);
        Assert.NotSame(AssemblyLoadContext.Default, AssemblyLoadContext.GetLoadContext(plugin.Instance.GetType().Assembly));

        var planned = PipelinePlanner.Plan(config, catalog).Single();
        var spec = ChainComposer.Compose(planned.Plan);
        using var chain = ChainLoader.Load(spec, new ClangCompiler(Path.Combine(_plugins, "cache")).Compile(spec.Source, "dropin").ObjectPath, planned.StageEntries);
        var run = chain.Entry.TestRun(Packets.Ipv4Udp("198.18.1.77", "198.18.9.1"));

        Assert.Equal(7, run.ReturnValue);
        Assert.Equal(1ul, chain.ReadCounters().Stages[0][StageCounter.Redirected]);
    }
}
