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
    /// <summary>Each stage's one line on what it holds (<see cref="StagePlan.Summary"/>), as <c>pluginhost validate</c> prints it.</summary>
    public IReadOnlyList<string?> Summaries { get; init; } = [];

    public void Dispose() => Chain.Dispose();
}

/// <summary>A chain validated and planned, not built: how long <see cref="PipelinePlanner.Plan"/> took and what it allocated.</summary>
public sealed record PlannedChain(PlannedPipeline Planned, TimeSpan Elapsed, long AllocatedBytes);

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

    /// <summary>
    /// Validate and plan a chain as <c>pluginhost validate</c> does (<see cref="PipelinePlanner.Plan"/>: each plugin checks its
    /// settings and builds its tables, the host encodes the entries), without composing or loading anything.
    /// </summary>
    public PlannedChain Plan(string name, string pluginsDirectory, IEnumerable<string> stages)
    {
        try
        {
            var (config, catalog) = Parse(name, pluginsDirectory, stages);
            long allocated = GC.GetTotalAllocatedBytes(precise: true);
            var watch = Stopwatch.StartNew();
            var planned = PipelinePlanner.Plan(config, catalog).Single();
            var elapsed = watch.Elapsed;
            return new PlannedChain(planned, elapsed, GC.GetTotalAllocatedBytes(precise: true) - allocated);
        }
        catch (ConfigException e)
        {
            throw new BenchException($"plan chain {name}: {string.Join("; ", e.Errors)}", e);
        }
        catch (Exception e) when (e is not BenchException and not OperationCanceledException)
        {
            throw new BenchException($"plan chain {name}: {e.Message}", e);
        }
    }

    private (HostConfig Config, PluginCatalog Catalog) Parse(string name, string pluginsDirectory, IEnumerable<string> stages)
    {
        var config = ConfigLoader.Parse(ConfigYaml(pluginsDirectory, stages), Path.Combine(sandbox.WorkDirectory, $"{name}.yaml"));
        if (!_catalogs.TryGetValue(config.PluginsDirectory, out var catalog))
            _catalogs[config.PluginsDirectory] = catalog = PluginCatalog.Load(config.PluginsDirectory, // every plugin there: the catalog serves many chains
                Directory.GetDirectories(config.PluginsDirectory).Select(d => Path.GetFileName(d)!));
        return (config, catalog);
    }

    /// <summary>Build a chain whose stages are given as YAML list items (each starting "- plugin:").</summary>
    public BuiltChain Build(string name, string pluginsDirectory, IEnumerable<string> stages)
    {
        try
        {
            var (config, catalog) = Parse(name, pluginsDirectory, stages);
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
                return new BuiltChain(chain, plan, compile, load, watch.Elapsed, planned.EntryCount)
                {
                    Summaries = planned.Plan.Stages.Select(s => s.Summary).ToList(),
                };
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
