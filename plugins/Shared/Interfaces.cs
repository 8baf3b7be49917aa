using PluginHost.Contract;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// Interface names resolved once each, for a table that names the same few interfaces on many lines. The wording of a
/// refusal is the context's own reason ("no interface named 'up9'"), as <see cref="SettingsNode.TryResolveInterface"/>
/// gives it for settings (which adds "missing output interface" for a missing field).
/// </summary>
internal sealed class Interfaces(IStageContext context)
{
    /// <summary>Every name resolved so far, with its ifindex.</summary>
    public Dictionary<string, int> Resolved { get; } = [];

    /// <summary>Resolve <paramref name="name"/>; the reason it cannot be used, or null.</summary>
    public string? Problem(string name, out int ifindex)
    {
        if (Resolved.TryGetValue(name, out ifindex))
            return null;
        if (!context.TryResolveInterface(name, out ifindex, out string error))
            return error;
        Resolved[name] = ifindex;
        return null;
    }

    /// <summary>Whether every name still resolves to the ifindex it had (interfaces can be renamed or recreated).</summary>
    public static bool Unchanged(IReadOnlyDictionary<string, int> resolved, IStageContext context) =>
        resolved.All(i => context.TryResolveInterface(i.Key, out int ifindex, out _) && ifindex == i.Value);
}
