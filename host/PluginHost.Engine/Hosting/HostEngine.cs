using Microsoft.Extensions.Logging;
using PluginHost.Compile;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Pipelines;
using PluginHost.Plugins;

namespace PluginHost.Hosting;

/// <summary>
/// The host's top level: configuration in, pipelines on their hooks out. Validation covers every
/// pipeline before anything is deployed, so a bad config applies nothing.
/// </summary>
public sealed class HostEngine(HostConfig config, ILoggerFactory loggers)
{
    private readonly PipelineDeployer _deployer = new(config.BpfRoot, config.RuntimeDirectory,
        new ClangCompiler(config.CacheDirectory), loggers.CreateLogger<PipelineDeployer>());

    public HostConfig Config { get; } = config;

    /// <summary>Check the configuration against the plugins and the interfaces; apply nothing.</summary>
    public IReadOnlyList<PlannedPipeline> Validate()
    {
        using var catalog = PluginCatalog.Load(Config.PluginsDirectory);
        return PipelinePlanner.Plan(Config, catalog, _deployer.NextGeneration);
    }

    /// <summary>Validate everything, then deploy each pipeline (attach or swap).</summary>
    public IReadOnlyList<DeployResult> Apply()
    {
        var planned = Validate();
        return planned.Select(_deployer.Deploy).ToList();
    }

    /// <summary>Detach and unpin every configured pipeline.</summary>
    public void Uninstall()
    {
        foreach (var p in Config.Pipelines)
            _deployer.Remove(p.Name);
    }
}
