using PluginHost.Compose;
using PluginHost.Observe;

namespace PluginHost.Datapath;

/// <summary>
/// Releases swapped-out generations once their grace period is over (packets already inside one finish there):
/// folds their counters into the pipeline's totals, unpins them, and unpins maps no generation uses any more.
/// Picks up generations a killed host left behind, and never retires a generation the pipeline's link runs,
/// whatever the state file says.
/// </summary>
internal sealed class GenerationRetirer(string bpfRoot, IPipelineStore store, IDatapathKernel kernel, TimeProvider time, MapContentsMemory memory,
    Action<string> fault)
{
    /// <summary>Retire what is due; returns the generations retired.</summary>
    public IReadOnlyList<uint> RetireDue(string pipeline)
    {
        var state = store.Load(pipeline);
        string dir = Path.Combine(bpfRoot, pipeline);
        if (state is null || !kernel.Exists(dir))
            return [];
        var now = time.GetUtcNow();
        var retiring = state.Retiring.ToList();
        foreach (uint n in kernel.PinnedGenerations(dir))
            if (GenerationDirectory(dir, n) != state.GenerationDirectory && retiring.All(r => r.Generation != n))
                retiring.Add(new RetiringGeneration(n, [], now)); // left by a host that died mid-way

        uint running = RunningProgram(dir);
        var totals = state.Retired;
        var keep = new List<RetiringGeneration>();
        var retired = new List<uint>();
        foreach (var r in retiring)
        {
            string genDir = GenerationDirectory(dir, r.Generation);
            string entryPin = Path.Combine(genDir, ChainSpec.EntryProgram);
            if (r.Due > now || (running != 0 && kernel.Exists(entryPin) && kernel.ProgramId(entryPin) == running))
            {
                keep.Add(r); // not yet, or the link still runs it
                continue;
            }
            string statsPin = Path.Combine(genDir, ChainSpec.StatsMap);
            if (r.Stages.Count > 0 && kernel.Exists(statsPin))
                totals = totals.Add(kernel.ReadCounters(statsPin, r.Stages.Count), r.Stages);
            if (kernel.Exists(genDir))
                kernel.Remove(genDir);
            retired.Add(r.Generation);
            fault(FaultPoints.DuringRetire); // unpinned, but the state still lists it as retiring
        }
        if (keep.Count == 0)
        {
            // Maps pinned for generations that are gone: once nothing waits to retire, only the running one's are used.
            var used = state.Maps.Select(m => m.Pin).ToHashSet();
            var unused = kernel.PinnedMaps(Path.Combine(dir, GenerationPlan.MapsDirectory)).Where(p => !used.Contains(p)).ToList();
            foreach (var pin in unused)
                kernel.Remove(pin);
            memory.Forget(unused);
        }
        if (keep.Count != state.Retiring.Count || !ReferenceEquals(totals, state.Retired))
            store.Save(state with { Retired = totals, Retiring = keep });
        return retired;
    }

    private static string GenerationDirectory(string pipelineDir, uint n) => Path.Combine(pipelineDir, $"g{n}");

    // The program the pipeline's link runs now (0: no link).
    private uint RunningProgram(string pipelineDir)
    {
        using var link = kernel.OpenLink(Path.Combine(pipelineDir, GenerationPlan.LinkPin));
        return link?.Info.ProgramId ?? 0;
    }
}
