using System.Diagnostics;
using System.Text;
using PluginHost.Bench.Setup;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Pipelines;
using PluginHost.Plugins;

namespace PluginHost.Bench.Scenarios;

/// <summary>A composed chain in the kernel (not attached) and what building it took.</summary>
public sealed record BuiltChain(LoadedChain Chain, TimeSpan Plan, TimeSpan Compile, TimeSpan Load, TimeSpan WriteEntries, int Entries) : IDisposable
{
    public void Dispose() => Chain.Dispose();
}

/// <summary>
/// Builds chains exactly as the host does, minus the attach: YAML → <see cref="ConfigLoader"/> →
/// <see cref="PluginCatalog"/> → <see cref="PipelinePlanner"/> → <see cref="ChainComposer"/> →
/// <see cref="ClangCompiler"/> → <see cref="ChainLoader"/>. The pipeline sits on the sandbox's input
/// interface, so plugins resolve route interfaces in the sandbox's namespace.
/// </summary>
public sealed class ChainBuilder(Sandbox sandbox) : IDisposable
{
    private readonly ClangCompiler _compiler = new(sandbox.CacheDirectory);

    // Plugins loaded once per directory, as the running host keeps them: plan times do not include loading them.
    private readonly Dictionary<string, PluginCatalog> _catalogs = [];

    public void Dispose()
    {
        foreach (var catalog in _catalogs.Values)
            catalog.Dispose();
        _catalogs.Clear();
    }

    /// <summary>Build a chain whose stages are given as YAML list items (each starting "- plugin:").</summary>
    public BuiltChain Build(string name, string pluginsDirectory, IEnumerable<string> stages)
    {
        string yaml = ConfigYaml(pluginsDirectory, stages);
        try
        {
            var config = ConfigLoader.Parse(yaml, Path.Combine(sandbox.WorkDirectory, $"{name}.yaml"));
            if (!_catalogs.TryGetValue(config.PluginsDirectory, out var catalog))
                _catalogs[config.PluginsDirectory] = catalog = PluginCatalog.Load(config.PluginsDirectory, // every plugin there: the catalog serves many chains
                    Directory.GetDirectories(config.PluginsDirectory).Select(d => Path.GetFileName(d)!));
            var watch = Stopwatch.StartNew();
            var planned = PipelinePlanner.Plan(config, catalog).Single();
            var spec = ChainComposer.Compose(planned.Plan);
            var plan = watch.Elapsed;

            watch.Restart();
            var compiled = _compiler.Compile(spec.Source, "bench-" + name);
            var compile = watch.Elapsed;

            watch.Restart();
            var chain = ChainLoader.Load(spec, compiled.ObjectPath, 1, new Dictionary<string, PluginHost.Kernel.BpfMap>());
            var load = watch.Elapsed;
            try
            {
                watch.Restart();
                chain.WriteEntries(planned.StageEntries);
                return new BuiltChain(chain, plan, compile, load, watch.Elapsed, planned.EntryCount);
            }
            catch
            {
                chain.Dispose();
                throw;
            }
        }
        catch (ConfigException e)
        {
            throw new BenchException($"build chain {name}: {string.Join("; ", e.Errors)}", e);
        }
        catch (Exception e) when (e is not BenchException and not OperationCanceledException)
        {
            throw new BenchException($"build chain {name}: {e.Message}", e);
        }
    }

    private string ConfigYaml(string pluginsDirectory, IEnumerable<string> stages)
    {
        var yaml = new StringBuilder();
        yaml.AppendLine($"pluginsDirectory: {pluginsDirectory}");
        yaml.AppendLine($"cacheDirectory: {sandbox.CacheDirectory}");
        yaml.AppendLine("pipelines:");
        yaml.AppendLine("  - name: bench");
        yaml.AppendLine($"    interface: {Sandbox.Input}");
        yaml.AppendLine("    direction: ingress");
        yaml.AppendLine($"    namespace: {sandbox.Namespace.Name}");
        yaml.AppendLine("    stages:");
        foreach (var stage in stages)
            foreach (var line in stage.TrimEnd().Split('\n'))
                yaml.Append("      ").AppendLine(line.TrimEnd());
        return yaml.ToString();
    }
}
