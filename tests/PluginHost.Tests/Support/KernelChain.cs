using PluginHost.TestSupport;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Lab;
using PluginHost.Pipelines;
using PluginHost.Plugins;

namespace PluginHost.Tests.Support;

/// <summary>
/// A private network namespace with three up interfaces (in0, out1, out2: veth pairs whose peers
/// stay in the same namespace) for building real chains from YAML, loading them and test-running them.
/// </summary>
public sealed class KernelChain : IDisposable
{
    public const string Input = "in0";
    public const string Out1 = "out1";
    public const string Out2 = "out2";
    public const string Out3 = "out3";

    private readonly string _cache = Path.Combine(Path.GetTempPath(), "pluginhost-test-cache");

    /// <param name="more">Interfaces beyond in0, out1 and out2 (such as <see cref="Out3"/>).</param>
    public KernelChain(params string[] more)
    {
        Namespace = InterfaceNamespace.Create("phk" + Guid.NewGuid().ToString("N")[..8], [Input, Out1, Out2, .. more]);
    }

    public NetworkNamespace Namespace { get; }

    public int Ifindex(string name) => int.Parse(Namespace.Exec("cat", $"/sys/class/net/{name}/ifindex").Trim());

    /// <summary>A config document for one pipeline on in0 with the given stages YAML (indented under 'stages:'); routes files may be in the temporary directory.</summary>
    public string ConfigYaml(string stages, string direction = "ingress") => $"""
        pluginsDirectory: {Repo.PluginsDirectory}
        allowedPaths: [{Path.GetTempPath()}]
        pipelines:
          - name: test
            interface: {Input}
            direction: {direction}
            namespace: {Namespace.Name}
            stages:
        {stages}
        """;

    /// <summary>Validate and plan (no kernel objects).</summary>
    public PlannedPipeline Plan(string stagesYaml, string direction = "ingress")
    {
        var config = ConfigLoader.Parse(ConfigYaml(stagesYaml, direction), "/test/config.yaml");
        using var catalog = PluginCatalog.Load(config.PluginsDirectory, PluginCatalog.NamesIn(config));
        return PipelinePlanner.Plan(config, catalog).Single();
    }

    /// <summary>Validate, plan, compose, compile and load (no attach).</summary>
    public LoadedChain Load(string stagesYaml, string direction = "ingress")
    {
        var planned = Plan(stagesYaml, direction);
        var spec = ChainComposer.Compose(planned.Plan);
        var compiled = new ClangCompiler(_cache).Compile(spec.Source, "test");
        return ChainLoader.Load(spec, compiled.ObjectPath, planned.StageEntries);
    }

    public void Dispose() => Namespace.Dispose();
}
