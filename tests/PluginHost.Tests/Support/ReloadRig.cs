using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.TestSupport;

namespace PluginHost.Tests.Support;

/// <summary>
/// A plugins directory the test fills with chosen plugin versions, a config file it rewrites, and
/// private BPF root, runtime and cache directories: everything a host needs, nothing shared.
/// </summary>
public sealed class ReloadRig : IDisposable
{
    public ReloadRig()
    {
        Work = Directory.CreateTempSubdirectory("pluginhost-reload-").FullName;
        Plugins = Directory.CreateDirectory(Path.Combine(Work, "plugins")).FullName;
        BpfRoot = $"/sys/fs/bpf/pluginhost-test-{Guid.NewGuid():N}";
        ConfigPath = Path.Combine(Work, "config.yaml");
        UsePlugin(Path.Combine(Repo.PluginsDirectory, "SourcePolicy"));
    }

    public string Work { get; }
    public string Plugins { get; }
    public string BpfRoot { get; }
    public string ConfigPath { get; }
    public string RuntimeDirectory => Path.Combine(Work, "run");

    /// <summary>Put a plugin folder into the plugins directory, replacing one of the same name (as an operator would, by rename).</summary>
    public void UsePlugin(string sourceFolder)
    {
        string name = Path.GetFileName(sourceFolder);
        string staging = Path.Combine(Work, $"staging-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        foreach (var file in Directory.GetFiles(sourceFolder))
            File.Copy(file, Path.Combine(staging, Path.GetFileName(file)));
        string target = Path.Combine(Plugins, name);
        string old = target + ".old-" + Guid.NewGuid().ToString("N");
        if (Directory.Exists(target))
            Directory.Move(target, old);
        Directory.Move(staging, target);
        if (Directory.Exists(old))
            Directory.Delete(old, recursive: true);
    }

    /// <summary>Write the config: one pipeline "p" with the given stages YAML (indented 6 spaces, under 'stages:').</summary>
    public void WriteConfig(string ns, string iface, string stages, string direction = "ingress") =>
        WritePipelines(HostYaml.Pipeline("p", ns, iface, stages, direction));

    /// <summary>Write a config with several pipelines (<see cref="HostYaml.Pipeline"/> texts).</summary>
    public void WritePipelines(params string[] pipelines)
    {
        string text = HostYaml.Config(Plugins, BpfRoot, RuntimeDirectory, Path.Combine(Repo.Root, "artifacts", "test-cache"), pipelines);
        File.WriteAllText(ConfigPath + ".tmp", text);
        File.Move(ConfigPath + ".tmp", ConfigPath, overwrite: true);
    }

    /// <summary>The program id the link of <paramref name="pipeline"/> runs.</summary>
    public uint AttachedProgramId(string pipeline)
    {
        using var link = TcxLink.OpenPinned(Path.Combine(BpfRoot, pipeline, "link"));
        return link.Info.ProgramId;
    }

    /// <summary>Everything pinned under the BPF root, sorted.</summary>
    public IReadOnlyList<string> Pins() =>
        Directory.GetFileSystemEntries(BpfRoot, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();

    public HostEngine Engine(TimeSpan? retireAfter = null) =>
        new(ConfigLoader.Load(ConfigPath), NullLoggerFactory.Instance, retireAfter ?? TimeSpan.Zero);

    public PipelineState State => PipelineState.Load(RuntimeDirectory, "p") ?? throw new InvalidOperationException("no pipeline state");

    public BpfProgram LiveEntry() => BpfProgram.OpenPinned(Path.Combine(State.GenerationDirectory, "ph_entry"));

    /// <summary>The attached program's id, as the kernel reports it for the pinned link.</summary>
    public uint AttachedProgramId()
    {
        using var link = TcxLink.OpenPinned(Path.Combine(BpfRoot, "p", "link"));
        return link.Info.ProgramId;
    }

    /// <summary>Every key and value of a pinned map, as hex, for byte-for-byte comparisons.</summary>
    public static SortedDictionary<string, string> Dump(string pin)
    {
        using var map = BpfMap.OpenPinned(pin);
        var value = new byte[map.Info.ValueSize];
        var dump = new SortedDictionary<string, string>();
        foreach (var key in map.Keys())
            if (map.TryLookup(key, value))
                dump[Convert.ToHexString(key)] = Convert.ToHexString(value);
        return dump;
    }

    public void Dispose()
    {
        BpfFs.RemoveTree(BpfRoot);
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { }
    }
}
