using System.Text;
using PluginHost.Compose;
using PluginHost.Contract;

namespace PluginHost.Pipelines;

/// <summary>
/// Each stage's last plan that validated, by pipeline, position, plugin build and settings. When a plugin fails
/// (throws, times out, or is quarantined) on settings it accepted before, the stage keeps that plan, so one broken
/// plugin costs only its own stages a change, not every other stage's reloads and runtime commands. Settings that
/// changed still have to validate.
/// </summary>
internal sealed class LastGoodStages
{
    private readonly Dictionary<(string Pipeline, int Stage), (string Key, StagePlan Plan, IReadOnlyDictionary<string, PackedEntries> Entries)> _stages = [];
    private readonly Lock _lock = new();

    /// <summary>What identifies a stage's input: the plugin build and the settings, written out.</summary>
    public static string KeyOf(string sha256, SettingsNode settings)
    {
        var text = new StringBuilder(sha256).Append('\n');
        Write(settings, text);
        return text.ToString();
    }

    public void Remember(string pipeline, int stage, string key, StagePlan plan, IReadOnlyDictionary<string, PackedEntries> entries)
    {
        lock (_lock)
            _stages[(pipeline, stage)] = (key, plan, entries);
    }

    /// <summary>Forget every plan: their plugins are being released (a plan's migration delegate points into its plugin).</summary>
    public void Clear()
    {
        lock (_lock)
            _stages.Clear();
    }

    public bool TryGet(string pipeline, int stage, string key, out StagePlan plan, out IReadOnlyDictionary<string, PackedEntries> entries)
    {
        lock (_lock)
        {
            if (_stages.TryGetValue((pipeline, stage), out var good) && good.Key == key)
            {
                (plan, entries) = (good.Plan, good.Entries);
                return true;
            }
        }
        (plan, entries) = (null!, null!);
        return false;
    }

    private static void Write(SettingsNode node, StringBuilder text)
    {
        switch (node.Kind)
        {
            case SettingsKind.Scalar:
                text.Append('"').Append(node.Scalar?.Replace("\"", "\\\"")).Append('"');
                break;
            case SettingsKind.Mapping:
                text.Append('{');
                foreach (var key in node.Keys.Order(StringComparer.Ordinal))
                {
                    text.Append('"').Append(key.Replace("\"", "\\\"")).Append("\":");
                    Write(node[key], text);
                    text.Append(',');
                }
                text.Append('}');
                break;
            case SettingsKind.Sequence:
                text.Append('[');
                foreach (var item in node.Items)
                {
                    Write(item, text);
                    text.Append(',');
                }
                text.Append(']');
                break;
            default:
                text.Append('~');
                break;
        }
    }
}
