namespace PluginHost.Datapath;

/// <summary>
/// The fds this host process holds on each pipeline's running generation (one set per pipeline; the previous set is
/// released when a new generation goes live). Owned by the host engine, so it outlives deployers re-created on reconfigure.
/// </summary>
internal sealed class HeldGenerations : IDisposable
{
    private readonly Dictionary<string, (uint Generation, IHeldGeneration Held)> _byPipeline = [];
    private readonly Lock _lock = new();

    /// <summary>The set held for <paramref name="pipeline"/>'s generation <paramref name="generation"/>, opened with <paramref name="hold"/> when it is not held yet.</summary>
    public IHeldGeneration For(string pipeline, uint generation, Func<IHeldGeneration> hold)
    {
        lock (_lock)
        {
            if (_byPipeline.TryGetValue(pipeline, out var held) && held.Generation == generation)
                return held.Held;
            held.Held?.Dispose();
            var fresh = hold();
            _byPipeline[pipeline] = (generation, fresh);
            return fresh;
        }
    }

    /// <summary>Whether fds on <paramref name="pipeline"/>'s generation <paramref name="generation"/> are held.</summary>
    public bool Holds(string pipeline, uint generation)
    {
        lock (_lock)
            return _byPipeline.TryGetValue(pipeline, out var held) && held.Generation == generation;
    }

    /// <summary>Let go of a pipeline's fds (before it is detached: a held link stays attached).</summary>
    public void Release(string pipeline)
    {
        lock (_lock)
            if (_byPipeline.Remove(pipeline, out var held))
                held.Held.Dispose();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var (_, held) in _byPipeline.Values)
                held.Dispose();
            _byPipeline.Clear();
        }
    }
}
