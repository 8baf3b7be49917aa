using System.Reflection.PortableExecutable;

namespace PluginHost.Hosting;

/// <summary>
/// Turns file-system events on the configuration file and the plugins directory into triggers, with
/// its own debounce: a change is reported once events have stopped for <see cref="Quiet"/> and every
/// plugin DLL reads as a complete assembly whose size has stopped changing. (McMaster's hot reload
/// fires while a DLL is still being copied; a half-written DLL must never be loaded.)
/// </summary>
public sealed class ChangeWatcher : IDisposable
{
    public static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    /// <summary>A DLL that stays unreadable this long is reported anyway; loading it will then say why.</summary>
    public static readonly TimeSpan GiveUpWaitingFor = TimeSpan.FromSeconds(30);

    private readonly List<FileSystemWatcher> _watchers = [];
    private readonly Action<Trigger> _post;
    private readonly string _pluginsDirectory;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    private readonly Timer _timer;
    private readonly object _gate = new();
    private DateTime _lastEvent;
    private DateTime _firstPending;
    private string? _pending;
    private Dictionary<string, long> _sizes = [];
    private readonly Func<IReadOnlyCollection<string>>? _named;

    /// <param name="namedPlugins">The plugin folders the configuration names now (null: all). Other folders are never
    /// loaded, so what happens in them (a staging copy, an unused plugin half-written) neither triggers nor delays a reload.</param>
    public ChangeWatcher(string configPath, string pluginsDirectory, Action<Trigger> post, Func<IReadOnlyCollection<string>>? namedPlugins = null)
    {
        _post = post;
        _pluginsDirectory = pluginsDirectory;
        _named = namedPlugins;
        string configDir = Path.GetDirectoryName(Path.GetFullPath(configPath))!;
        string configName = Path.GetFileName(configPath);
        var config = new FileSystemWatcher(configDir) { NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size };
        FileSystemEventHandler onConfig = (_, e) => { if (e.Name == configName) Touch($"config {configName}"); };
        config.Changed += onConfig;
        config.Created += onConfig;
        config.Renamed += (_, e) => { if (e.Name == configName) Touch($"config {configName}"); };
        _watchers.Add(config);
        if (Directory.Exists(pluginsDirectory))
        {
            var plugins = new FileSystemWatcher(pluginsDirectory)
            {
                IncludeSubdirectories = true,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
            };
            FileSystemEventHandler onPlugin = (_, e) => { if (Named(e.Name)) Touch($"plugins {e.Name}"); };
            plugins.Changed += onPlugin;
            plugins.Created += onPlugin;
            plugins.Deleted += onPlugin;
            // A folder renamed into place (a drop-in) or away counts when either name is one the configuration uses.
            plugins.Renamed += (_, e) => { if (Named(e.Name) || Named(e.OldName)) Touch($"plugins {e.Name}"); };
            _watchers.Add(plugins);
        }
        // Armed by the first event of a burst, disarmed once it is posted: an idle host wakes for nothing.
        _timer = new Timer(_ => Check(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        foreach (var w in _watchers)
            w.EnableRaisingEvents = true;
    }

    // Whether a path under the plugins directory is in a folder the configuration names.
    private bool Named(string? relative)
    {
        if (_named is null || relative is null)
            return true;
        string folder = relative.Split(Path.DirectorySeparatorChar, 2)[0];
        return _named().Contains(folder);
    }

    private void Touch(string what)
    {
        lock (_gate)
        {
            _lastEvent = DateTime.UtcNow;
            if (_pending is null)
            {
                _firstPending = _lastEvent;
                _timer.Change(Poll, Poll);
            }
            _pending ??= what;
        }
    }

    private void Check()
    {
        string? what;
        lock (_gate)
        {
            if (_pending is null || DateTime.UtcNow - _lastEvent < Quiet)
                return;
            what = _pending;
        }
        bool giveUp = DateTime.UtcNow - _firstPending > GiveUpWaitingFor;
        if (!giveUp && !PluginsLookComplete())
            return;
        lock (_gate)
        {
            if (DateTime.UtcNow - _lastEvent < Quiet)
                return; // more events came in while we looked
            _pending = null;
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
        _post(new Trigger("watch", what));
    }

    // Complete = every plugin DLL parses as a PE image with metadata, and no DLL changed size since the last look.
    private bool PluginsLookComplete()
    {
        if (!Directory.Exists(_pluginsDirectory))
            return true;
        var sizes = new Dictionary<string, long>();
        bool complete = true;
        foreach (var dll in Directory.EnumerateFiles(_pluginsDirectory, "*.dll", SearchOption.AllDirectories))
        {
            if (!Named(Path.GetRelativePath(_pluginsDirectory, dll)))
                continue;
            try
            {
                sizes[dll] = new FileInfo(dll).Length;
                using var stream = File.OpenRead(dll);
                using var pe = new PEReader(stream, PEStreamOptions.PrefetchEntireImage);
                if (!pe.HasMetadata || pe.GetEntireImage().Length != sizes[dll])
                    complete = false;
            }
            catch (Exception e) when (e is IOException or BadImageFormatException or UnauthorizedAccessException)
            {
                complete = false;
            }
        }
        bool stable = sizes.Count == _sizes.Count && sizes.All(kv => _sizes.TryGetValue(kv.Key, out long n) && n == kv.Value);
        _sizes = sizes;
        return complete && stable;
    }

    public void Dispose()
    {
        _timer.Dispose();
        foreach (var w in _watchers)
            w.Dispose();
    }
}
