namespace PluginHost.Hosting;

/// <summary>
/// What the apply in progress is doing, for a progress bar: the phase and, while writing map entries,
/// how many of how many. One per host; read without locks by the API while the reconciler works.
/// </summary>
public sealed class ApplyProgress
{
    private volatile Snapshot _current = Snapshot.Idle;

    public sealed record Snapshot(string Phase, long Done, long Total)
    {
        public static readonly Snapshot Idle = new("idle", 0, 0);
    }

    public Snapshot Current => _current;

    public void Phase(string phase, long total = 0) => _current = new Snapshot(phase, 0, total);

    public void Advance(long done) => _current = _current with { Done = done };

    public void Idle() => _current = Snapshot.Idle;
}
