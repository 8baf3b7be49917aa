using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace PluginHost.Plugins;

/// <summary>
/// Keeps the loaded plugins between applies while the plugins the configuration names are unchanged (the same files,
/// every DLL with the same content, the same owners and modes), so a route change does not pay for loading and
/// JIT-compiling every plugin again (~20 ms of a ~23 ms apply). A change builds a new catalog that takes the unchanged
/// plugin folders over from the old one and hands back the old one, holding only what changed, to be released. Each new
/// catalog's problems are logged once (those of folders nobody names block nothing, so the log and the listing are
/// where they show).
/// </summary>
internal sealed partial class PluginCatalogCache(ILogger? log = null) : IDisposable
{
    private readonly ILogger _log = log ?? NullLogger.Instance;
    private PluginCatalog? _current;
    private string _signature = "";

    /// <summary>
    /// The catalog of the plugins <paramref name="names"/> in <paramref name="directory"/>; <paramref name="replaced"/> is the
    /// one it replaces, for the caller to release.
    /// </summary>
    public PluginCatalog Get(string directory, IReadOnlyCollection<string> names, out PluginCatalog? replaced)
    {
        string signature = Signature(directory, names);
        replaced = null;
        if (_current is not null && signature == _signature)
            return _current;
        // Unchanged plugin folders move to the new catalog; what stays in the old one is what changed or left.
        var next = PluginCatalog.Load(directory, names, reuse: _current);
        replaced = _current;
        _current = next;
        _signature = signature;
        foreach (var problem in next.Errors)
            LogProblem(problem);
        return _current;
    }

    /// <summary>Forget the current catalog and return it, for the caller to release.</summary>
    /// <summary>The catalog loaded now, if any (no load).</summary>
    public PluginCatalog? Current => _current;

    public PluginCatalog? Release()
    {
        var current = _current;
        _current = null;
        _signature = "";
        return current;
    }

    // The named folders by content, and everything the trust rule reads (owners and modes along every path, the allow-list);
    // other folders by name and their DLL's size and time (for the listing).
    private static string Signature(string directory, IReadOnlyCollection<string> names)
    {
        if (!Directory.Exists(directory))
            return directory + "\n(missing)\n" + string.Join(',', names.Order(StringComparer.Ordinal));
        var text = new System.Text.StringBuilder(directory).Append('\n');
        text.Append(PluginTrust.Check(directory, PluginTrust.DirectoryRule)).Append('\n');
        string allowList = Path.Combine(directory, PluginTrust.AllowListName);
        if (File.Exists(allowList))
            text.Append(PluginTrust.Check(allowList, PluginTrust.AllowListRule)).Append('|').Append(PluginTrust.Sha256(allowList)).Append('\n');
        foreach (var name in names.Order(StringComparer.Ordinal))
        {
            string folder = Path.Combine(directory, name);
            text.Append(name).Append('\n');
            if (!Directory.Exists(folder) || Path.GetFileName(folder) != name)
                continue;
            text.Append(PluginTrust.Check(folder, PluginTrust.PluginRule)).Append('\n');
            foreach (var entry in Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                text.Append(PluginTrust.Check(entry, PluginTrust.PluginRule)).Append('\n');
            text.Append(PluginCatalog.Signature(folder)).Append('\n');
        }
        foreach (var folder in Directory.GetDirectories(directory).Order(StringComparer.Ordinal))
        {
            var dll = new FileInfo(Path.Combine(folder, Path.GetFileName(folder) + ".dll"));
            if (dll.Exists)
                text.Append(folder).Append('|').Append(dll.Length).Append('|').Append(dll.LastWriteTimeUtc.Ticks).Append('\n');
        }
        return text.ToString();
    }

    public void Dispose() => Release()?.Dispose();

    [LoggerMessage(EventId = 120, Level = LogLevel.Warning, Message = "plugins: {Problem}")]
    private partial void LogProblem(string problem);
}
