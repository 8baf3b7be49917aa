namespace PluginHost.Plugins;

/// <summary>
/// Keeps the loaded plugins between applies while the plugins directory is unchanged (the same files,
/// and every DLL with the same content), so a route change does not pay for loading and JIT-compiling every
/// plugin again (~20 ms of a ~23 ms apply). A change builds a new catalog that takes the unchanged plugin
/// folders over from the old one and hands back the old one, holding only what changed, to be released.
/// </summary>
internal sealed class PluginCatalogCache : IDisposable
{
    private PluginCatalog? _current;
    private string _signature = "";

    /// <summary>The catalog for <paramref name="directory"/>; <paramref name="replaced"/> is the one it replaces, for the caller to release.</summary>
    public PluginCatalog Get(string directory, out PluginCatalog? replaced)
    {
        string signature = directory + "\n" + Signature(directory);
        replaced = null;
        if (_current is not null && signature == _signature)
            return _current;
        // Unchanged plugin folders move to the new catalog; what stays in the old one is what changed or left.
        var next = PluginCatalog.Load(directory, reuse: _current);
        replaced = _current;
        _current = next;
        _signature = signature;
        return _current;
    }

    /// <summary>Forget the current catalog and return it, for the caller to release.</summary>
    public PluginCatalog? Release()
    {
        var current = _current;
        _current = null;
        _signature = "";
        return current;
    }

    private static string Signature(string directory) =>
        Directory.Exists(directory)
            ? string.Join('\n', Directory.GetDirectories(directory).Order(StringComparer.Ordinal).Select(d => d + "\n" + PluginCatalog.Signature(d)))
            : "(missing)";

    public void Dispose() => Release()?.Dispose();
}
