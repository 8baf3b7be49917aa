using System.Text.Json;
using PluginHost.Config;
using PluginHost.Contract;

namespace PluginHost.Runtime;

/// <summary>
/// Changes made at run time (<c>pluginhost route add</c>, ...), kept in a desired-state file beside the
/// configuration (<c>router.yaml.runtime.json</c> for <c>router.yaml</c>: <see cref="PathFor"/>) so that reloads and restarts keep them. Each change edits
/// one list in one stage's settings: an item added (or replaced) or removed, by key. The result is
/// validated by the plugin exactly like configuration.
/// </summary>
internal sealed class RuntimeOverlay
{
    // pipeline → stage instance (SourcePolicy-0) → "collection:keyField" (routes:from) → key value → item, or null when removed
    private readonly Dictionary<string, Dictionary<string, Dictionary<string, Dictionary<string, Dictionary<string, string>?>>>> _edits;

    private RuntimeOverlay(Dictionary<string, Dictionary<string, Dictionary<string, Dictionary<string, Dictionary<string, string>?>>>> edits) => _edits = edits;

    public static RuntimeOverlay Empty => new([]);

    public static string PathFor(string configPath) => configPath + ".runtime.json";

    public static RuntimeOverlay Load(string path)
    {
        if (!File.Exists(path))
            return Empty;
        try
        {
            var edits = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, Dictionary<string, Dictionary<string, Dictionary<string, string>?>>>>>(File.ReadAllText(path));
            return new RuntimeOverlay(edits ?? []);
        }
        catch (JsonException e)
        {
            throw new ConfigException([new ConfigError(path, (int)(e.LineNumber ?? 0) + 1, "(runtime state)", $"unreadable: {e.Message}")]);
        }
    }

    public void Save(string path)
    {
        Datapath.PrivateFile.WriteAllText(path, JsonSerializer.Serialize(_edits, Indented));
    }

    // One instance: options made anew build their serializers anew (code generated and JIT-compiled on every save).
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>A copy with one more edit: <paramref name="item"/> added under <paramref name="keyValue"/>, or removed when null.</summary>
    public RuntimeOverlay With(string pipeline, string stage, string collection, string keyField, string keyValue, Dictionary<string, string>? item)
    {
        var copy = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, Dictionary<string, Dictionary<string, Dictionary<string, string>?>>>>>(
            JsonSerializer.Serialize(_edits))!;
        var items = Get(Get(Get(copy, pipeline), stage), keyField.Length == 0 ? $"{collection}=" : $"{collection}:{keyField}");
        items[keyValue] = item;
        return new RuntimeOverlay(copy);
    }

    private static TValue Get<TValue>(Dictionary<string, TValue> d, string key) where TValue : new() =>
        d.TryGetValue(key, out var v) ? v : d[key] = new TValue();

    /// <summary>The configuration with these edits applied to the stages' settings.</summary>
    public HostConfig ApplyTo(HostConfig config)
    {
        if (_edits.Count == 0)
            return config;
        var pipelines = config.Pipelines.Select(p =>
        {
            if (!_edits.TryGetValue(p.Name, out var stages))
                return p;
            var names = StageInstances(p);
            var newStages = p.Stages.Select((s, i) =>
                stages.TryGetValue(names[i], out var collections) ? s with { Settings = Edit(s.Settings, collections, s.Node.Path + ".settings") } : s).ToList();
            return p with { Stages = newStages };
        }).ToList();
        return config with { Pipelines = pipelines };
    }

    /// <summary>Stage identities as the datapath names them: plugin name and occurrence (SourcePolicy-0).</summary>
    public static IReadOnlyList<string> StageInstances(PipelineConfig pipeline)
    {
        var plugins = pipeline.Stages.Select(s => s.Plugin).ToList();
        return plugins.Select((_, i) => Compose.ChainComposer.InstanceName(plugins, i)).ToList();
    }

    private static SettingsNode Edit(SettingsNode settings, Dictionary<string, Dictionary<string, Dictionary<string, string>?>> collections, string path)
    {
        var children = settings.Kind == SettingsKind.Mapping ? settings.Keys.ToDictionary(k => k, k => settings[k]) : [];
        foreach (var (target, edits) in collections)
        {
            if (target.EndsWith('='))
            {
                // A scalar setting (RuntimeAction.Set): the last value set wins.
                string setting = target[..^1];
                if (edits.Values.LastOrDefault() is { } set)
                    children[setting] = new SettingsNode($"{path}.{setting}", 0, SettingsKind.Scalar, set["value"]);
                continue;
            }
            string collection = target.Split(':')[0], keyField = target.Split(':')[^1];
            var existing = children.TryGetValue(collection, out var list) && list.Kind == SettingsKind.Sequence ? list.Items : [];
            string listPath = $"{path}.{collection}";
            var items = existing.Where(item => !edits.ContainsKey(item[keyField].Scalar ?? "")).ToList();
            foreach (var (key, item) in edits)
                if (item is not null)
                    items.Add(new SettingsNode($"{listPath}[runtime {key}]", 0, SettingsKind.Mapping,
                        children: item.ToDictionary(kv => kv.Key, kv => new SettingsNode($"{listPath}[runtime {key}].{kv.Key}", 0, SettingsKind.Scalar, kv.Value))));
            children[collection] = new SettingsNode(listPath, settings.Line, SettingsKind.Sequence, items: items);
        }
        return new SettingsNode(path, settings.Line, SettingsKind.Mapping, children: children);
    }
}
