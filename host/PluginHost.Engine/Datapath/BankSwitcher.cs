using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>
/// Changes a stage's double-buffered maps as one (<see cref="Contract.MapSchema.DoubleBuffered"/>): when what packets
/// use differs from the desired entries, the copies packets do not use are made to hold them, then the stage's bank
/// selector flips. A packet reads the selector once, so it sees the old copies or the new ones, never a mix.
/// A copy is written again only after a grace period that began after the flip that took packets off it: the kernel's
/// (an RCU grace period, some 5–30 ms), waited for in the background so that changes spaced wider than that never wait.
/// </summary>
internal sealed class BankSwitcher(IDatapathKernel kernel, MapReconciler reconciler)
{
    private readonly Dictionary<string, Task> _graceAfterFlip = []; // selector pin → the wait begun after its last write
    private readonly Lock _lock = new();

    /// <summary>Waits the host has made a change wait for a grace period (tests and status).</summary>
    public int GraceWaits { get; private set; }

    /// <summary>
    /// Bring one stage's reused double-buffered copies to their desired entries. <paramref name="group"/>: the copies
    /// and the selector, all reused (pinned, live). Returns the entries that changed for packets (against the copies in use).
    /// </summary>
    public void Switch(PreparedGeneration prepared, IReadOnlyList<MapDecision> group)
    {
        var selector = group.Single(d => d.Map.IsBankSelector);
        var copies = group.Where(d => !d.Map.IsBankSelector).ToList();
        var selectorMap = kernel.OpenMap(selector.Pin);
        prepared.OpenedMaps.Add(selectorMap);
        uint bank = ReadBank(selectorMap);
        int changed = 0;
        foreach (var copy in copies.Where(c => c.Map.SecondCopy == (bank == 1)))
        {
            using var map = kernel.OpenMap(copy.Pin);
            changed += reconciler.Differences(copy, map);
        }
        if (changed == 0)
            return;

        WaitForGrace(selector.Pin);
        foreach (var copy in copies.Where(c => c.Map.SecondCopy != (bank == 1)))
        {
            prepared.TouchedPins.Add(copy.Pin);
            var map = kernel.OpenMap(copy.Pin);
            prepared.OpenedMaps.Add(map);
            // Not what packets saw change: that is counted against the copies in use, below.
            prepared.Changes.Add(reconciler.Reconcile(copy, map) with { Entries = 0 });
        }
        uint flipped = 1 - bank;
        WriteBank(selectorMap, flipped);
        StartGrace(selector.Pin);
        var now = new PackedEntries(4, 4);
        now.Add(BitConverter.GetBytes(0u), BitConverter.GetBytes(flipped));
        prepared.Changes.Add(new MapReconciler.Change(selector.Pin, changed, () =>
        {
            WriteBank(selectorMap, bank);
            StartGrace(selector.Pin);
        }, null, now));
    }

    /// <summary>0 or 1: which copies packets use now.</summary>
    public static uint ReadBank(IMapAccess selector)
    {
        var entries = selector.ReadAll(4, 4, skipZero: false);
        return entries.Count > 0 && BitConverter.ToUInt32(entries.Value(0)) == 1 ? 1u : 0u;
    }

    private static void WriteBank(IMapAccess selector, uint bank) => selector.Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(bank));

    private void StartGrace(string selectorPin)
    {
        lock (_lock)
            _graceAfterFlip[selectorPin] = Task.Run(kernel.WaitForRunningPrograms);
    }

    // A selector this process has not flipped may have been flipped by a host that ran before: wait once, here.
    private void WaitForGrace(string selectorPin)
    {
        Task? pending;
        lock (_lock)
            pending = _graceAfterFlip.GetValueOrDefault(selectorPin);
        if (pending is null)
        {
            GraceWaits++;
            kernel.WaitForRunningPrograms();
            lock (_lock)
                _graceAfterFlip[selectorPin] = Task.CompletedTask;
            return;
        }
        if (!pending.IsCompleted)
            GraceWaits++;
        pending.GetAwaiter().GetResult();
    }
}
