using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>
/// What this host process last made each configuration map hold, by pin: the next change is diffed against
/// it in memory instead of reading the map back from the kernel, which for a million prefixes took seconds
/// (two syscalls an entry: LPM tries have no batch lookup). Trusted for the life of the process only: a
/// restart, an operator's reload (SIGHUP, <c>pluginhost reload</c>) and any failed apply forget it, and the
/// next apply reads the map back, which also undoes edits made behind the host's back.
/// </summary>
public sealed class MapContentsMemory
{
    private readonly Dictionary<string, PackedIndex> _byPin = [];
    private readonly Lock _lock = new();

    public PackedIndex? Get(string pin)
    {
        lock (_lock)
            return _byPin.GetValueOrDefault(pin);
    }

    /// <summary>Remember that the map pinned at <paramref name="pin"/> now holds exactly <paramref name="entries"/>.</summary>
    public void Set(string pin, PackedEntries entries)
    {
        var index = new PackedIndex(entries);
        lock (_lock)
            _byPin[pin] = index;
    }

    public void ForgetAll()
    {
        lock (_lock)
            _byPin.Clear();
    }

    /// <summary>Maps remembered (tests, diagnostics).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
                return _byPin.Count;
        }
    }
}
