using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Net;
using PluginHost.Plugins;

namespace PluginHost.Pipelines;

/// <summary>A pipeline ready to build: everything host-owned, nothing of the plugins' types kept.</summary>
/// <param name="StageEntries">For each stage: its maps' desired entries (by map name), encoded and packed.</param>
public sealed record PlannedPipeline(PipelineConfig Config, int Ifindex, PipelinePlan Plan, IReadOnlyList<IReadOnlyDictionary<string, PackedEntries>> StageEntries)
{
    /// <summary>Desired entries over all stages and maps.</summary>
    public int EntryCount => StageEntries.Sum(s => s.Values.Sum(p => p.Count));
}

/// <summary>
/// Validates every pipeline against the loaded plugins (each plugin checks its own settings) and
/// turns the result into plans. All problems are collected; any problem means nothing is planned.
/// </summary>
internal static class PipelinePlanner
{
    public static IReadOnlyList<PlannedPipeline> Plan(HostConfig config, PluginCatalog catalog)
    {
        var errors = new List<ConfigError>();
        foreach (var problem in catalog.Errors)
            errors.Add(new ConfigError(config.SourcePath, 0, "pluginsDirectory", problem));

        var planned = new List<PlannedPipeline>();
        foreach (var pipeline in config.Pipelines)
        {
            // Interface names mean something only inside the pipeline's namespace, so validate there.
            var result = NamespaceScope.Run(pipeline.Namespace, () => PlanOne(config, pipeline, catalog, errors));
            if (result is not null)
                planned.Add(result);
        }
        if (errors.Count > 0)
            throw new ConfigException(errors);
        return planned;
    }

    private static PlannedPipeline? PlanOne(HostConfig config, PipelineConfig pipeline, PluginCatalog catalog, List<ConfigError> errors)
    {
        int before = errors.Count;
        void Error(SettingsNode node, string message) =>
            errors.Add(new ConfigError(config.SourcePath, node.Line, node.Path, message));

        int ifindex = 0;
        if (!Interfaces.TryResolve(pipeline.Interface, out ifindex, out string ifError))
            Error(pipeline.Node["interface"], ifError + (pipeline.Namespace is null ? "" : $" in network namespace {pipeline.Namespace}"));

        var stages = new List<StagePlan>();
        var entries = new List<IReadOnlyDictionary<string, PackedEntries>>();
        foreach (var stage in pipeline.Stages)
        {
            if (!catalog.Plugins.TryGetValue(stage.Plugin, out var loaded))
            {
                string available = catalog.Plugins.Count == 0 ? "none loaded" : string.Join(", ", catalog.Plugins.Keys.Order());
                Error(stage.Node["plugin"], $"unknown plugin '{stage.Plugin}' (available in {catalog.Directory}: {available})");
                continue;
            }
            var plugin = loaded.Instance;
            var context = new StageContext(pipeline, Path.GetDirectoryName(config.SourcePath)!, Error);
            StageSetup setup;
            try
            {
                setup = plugin.Configure(stage.Settings, context);
            }
            catch (Exception e)
            {
                Error(stage.Node, $"plugin {plugin.Name} failed to validate its settings: {e.GetType().Name}: {e.Message}");
                continue;
            }
            // Encode every entry now: a bad entry is a config error, not a half-applied map, and the bytes are
            // what the maps get (no plugin object is kept).
            var maps = plugin.Maps.Select(m => new StageMap(stages.Count, "check", m)).ToDictionary(m => m.Schema.Name);
            var packed = maps.Values.ToDictionary(m => m.Schema.Name, m => new PackedEntries(m.Key.Size, m.Value.Size));
            foreach (var entry in setup.Entries)
            {
                try
                {
                    var map = maps.TryGetValue(entry.Map, out var m) ? m : throw new FormatException($"no map named '{entry.Map}'");
                    packed[entry.Map].Add(map.Key, entry.Key, map.Value, entry.Value);
                }
                catch (FormatException e)
                {
                    Error(stage.Node, $"plugin {plugin.Name} produced an entry its schema refuses: {e.Message}");
                }
            }
            foreach (var table in setup.Tables)
            {
                try
                {
                    var map = maps.TryGetValue(table.Map, out var m) ? m : throw new FormatException($"no map named '{table.Map}'");
                    packed[table.Map].AddRange(PackedTables.Encode(table, map));
                }
                catch (FormatException e)
                {
                    Error(stage.Node, $"plugin {plugin.Name} produced a table its schema refuses: {e.Message}");
                }
            }
            // Copy out of the plugin: the plan must not keep plugin objects alive past this pass
            // (the migration delegate is used only while the catalog that owns the plugin is open).
            var migration = plugin as IMapMigration;
            stages.Add(new StagePlan(plugin.Name, plugin.Template with { }, plugin.Maps.ToList(),
                new Dictionary<string, long>(setup.Constants))
            {
                Canaries = setup.Canaries.Select(c => c with { Frame = c.Frame.ToArray() }).ToList(),
                Migrate = migration is null ? null : migration.Migrate,
            });
            entries.Add(packed);
        }
        if (errors.Count > before)
            return null;
        var plan = new PipelinePlan(pipeline.Name, pipeline.Direction, stages);
        return new PlannedPipeline(pipeline, ifindex, plan, entries);
    }

    private sealed class StageContext(PipelineConfig pipeline, string configDirectory, Action<SettingsNode, string> error) : IStageContext
    {
        public string PipelineName => pipeline.Name;

        public Direction Direction => pipeline.Direction;

        private readonly Dictionary<string, (bool Ok, int Ifindex, string Message)> _interfaces = [];

        public bool TryResolveInterface(string name, out int ifindex, out string message)
        {
            if (_interfaces.TryGetValue(name, out var known))
            {
                (ifindex, message) = (known.Ifindex, known.Message);
                return known.Ok;
            }
            bool ok = Interfaces.TryResolve(name, out ifindex, out message);
            if (!ok && pipeline.Namespace is not null)
                message += $" in network namespace {pipeline.Namespace}";
            _interfaces[name] = (ok, ifindex, message);
            return ok;
        }

        public string ResolvePath(string path) => Path.GetFullPath(path, configDirectory);

        public void Error(SettingsNode node, string message) => error(node, message);
    }
}
