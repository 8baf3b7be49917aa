using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>
/// What this host process last made each configuration map hold, by pin: the next change is diffed against
/// it in memory instead of reading the map back from the kernel, which for a million prefixes took seconds
/// (two syscalls an entry: LPM tries have no batch lookup). Trusted for the life of the process only: a
/// restart, an operator's reload (SIGHUP, <c>pluginhost reload</c>) and any failed apply forget it, and the
/// next apply reads the map back, which also undoes edits made behind the host's back.
/// </summary>
internal sealed class MapContentsMemory
{
    private readonly Dictionary<string, PackedIndex> _byPin = [];
    private readonly Lock _lock = new();

    public PackedIndex? Get(string pin)
    {
        lock (_lock)
            return _byPin.GetValueOrDefault(pin);
    }

    /// <summary>Remember that the map pinned at <paramref name="pin"/> now holds exactly what <paramref name="index"/> indexes.</summary>
    public void Set(string pin, PackedIndex index)
    {
        lock (_lock)
            _byPin[pin] = index;
    }

    /// <summary>Forget these maps (an apply that touched them failed, or they were unpinned): the next apply reads them back.</summary>
    public void Forget(IEnumerable<string> pins)
    {
        lock (_lock)
            foreach (var pin in pins)
                _byPin.Remove(pin);
    }

    public void ForgetAll()
    {
        lock (_lock)
            _byPin.Clear();
    }
}
