using PluginHost.Compose;
using PluginHost.Observe;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Lab;
using PluginHost.TestSupport;

namespace PluginHost.Tests.Support;

/// <summary>
/// A host engine for lab tests: a private work directory and BPF root, and one pipeline on the router's lan0
/// ingress with the given stages; disposing uninstalls it and removes both.
/// </summary>
public sealed class LabHost : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("pluginhost-lab-").FullName;
    private readonly string _bpfRoot = $"/sys/fs/bpf/pluginhost-test-{Guid.NewGuid():N}";

    /// <param name="stagesYaml">Stage list items, indented 6 spaces (under <c>stages:</c>).</param>
    public LabHost(RouterLab lab, string pipeline, string stagesYaml)
    {
        Pipeline = pipeline;
        string path = Path.Combine(_work, "config.yaml");
        File.WriteAllText(path, HostYaml.Config(Repo.PluginsDirectory, _bpfRoot, RuntimeDirectory, Path.Combine(_work, "cache"),
            HostYaml.Pipeline(pipeline, lab.Router.Name, RouterLab.RouterLan, stagesYaml)));
        Engine = new HostEngine(ConfigLoader.Load(path), NullLoggerFactory.Instance, retireAfter: TimeSpan.Zero);
    }

    public string Pipeline { get; }

    public HostEngine Engine { get; }

    public string RuntimeDirectory => Path.Combine(_work, "run");

    /// <summary>The program id the pipeline's link runs.</summary>
    public uint AttachedProgramId()
    {
        using var link = TcxLink.OpenPinned(Path.Combine(_bpfRoot, Pipeline, "link"));
        return link.Info.ProgramId;
    }

    /// <summary>The configuration's directory: files the configuration names (routes, rules) go here.</summary>
    public string WorkDirectory => _work;

    /// <summary>The pipeline's counters, totals across generations.</summary>
    public PipelineCounters Counters() => CounterReader.ReadPinned(PipelineState.Load(RuntimeDirectory, Pipeline)
        ?? throw new InvalidOperationException($"read counters of pipeline {Pipeline}: not deployed"));

    public void Dispose()
    {
        try
        {
            Engine.Uninstall();
        }
        finally
        {
            BpfFs.RemoveTree(_bpfRoot);
            Directory.Delete(_work, recursive: true);
        }
    }
}
