using PluginHost.Contract;
using PluginHost.Hosting;
using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>
/// Makes a configuration map hold exactly its desired entries, by difference: changed and new keys are written, then
/// keys no longer desired are deleted (zeroed in an array, whose elements always exist), equal ones untouched.
/// Writes come before deletes (make-before-break): replacing a /24 by two /25s never leaves a moment where neither
/// covers an address. What the map holds is taken from <see cref="MapContentsMemory"/> or read back from the kernel once.
/// </summary>
internal sealed class MapReconciler(MapContentsMemory memory, ApplyProgress? progress)
{
    /// <summary>One map changed: how many entries, how to put it back, and what it holds now.</summary>
    public sealed record Change(string Pin, int Entries, Action Undo, PackedIndex? Unchanged, PackedEntries Now);

    /// <summary>How many entries the map holds that differ from the desired ones (written, changed or deleted), changing nothing.</summary>
    public int Differences(MapDecision decision, IMapAccess kernel)
    {
        var desired = decision.Desired!;
        var current = Current(decision, kernel);
        int differences = 0;
        Compare(desired, current,
            desiredOnly: _ => differences++,
            heldOnly: _ => differences++,
            both: (i, at) =>
            {
                if (!current.Entries.Value(at).SequenceEqual(desired.Value(i)))
                    differences++;
            });
        // Read back from the kernel: remembered, as the next Reconcile of this map would.
        memory.Set(decision.Pin, current);
        return differences;
    }

    /// <summary>
    /// Pairs the desired entries with the held ones by key, past the leading run the two hold alike. Every desired entry is
    /// reported in order (alone or with the held entry of its key); then every held entry no desired one has. A key held
    /// twice (a remembered plan with a duplicate) counts at its last occurrence.
    /// </summary>
    private static void Compare(PackedEntries desired, PackedIndex current, Action<int> desiredOnly, Action<int> heldOnly, Action<int, int> both)
    {
        var held = current.Entries;
        // Both ascending (array tables in index order): no key repeats, so past the alike run a key can only pair with a
        // key past it too, and one merge pairs them, with no index of the whole map (tens of thousands of entries).
        bool merge = current.Ascending && KeyOrder.Ascending(desired);
        int same = SamePrefix(desired, current, unique: merge);
        if (merge)
        {
            int i = same, j = same;
            while (i < desired.Count || j < held.Count)
            {
                int order = i == desired.Count ? 1 : j == held.Count ? -1 : KeyOrder.Compare(desired.Key(i), held.Key(j));
                if (order < 0)
                    desiredOnly(i++);
                else if (order > 0)
                    heldOnly(j++);
                else
                    both(i++, j++);
            }
            return;
        }
        var seen = new bool[held.Count];
        Array.Fill(seen, true, 0, same);
        for (int i = same; i < desired.Count; i++)
        {
            int at = current.Find(desired.Key(i));
            if (at < 0)
            {
                desiredOnly(i);
                continue;
            }
            seen[at] = true;
            both(i, at);
        }
        for (int j = 0; j < held.Count; j++)
            if (!seen[j] && current.Find(held.Key(j)) == j)
                heldOnly(j);
    }

    // How many leading entries the two hold alike, key and value, in the same order: a table rebuilt from the same
    // input comes out in the same order, so most of a large map is compared as memory, not looked up key by key.
    // unique: neither repeats a key (known without an index).
    private static int SamePrefix(PackedEntries desired, PackedIndex current, bool unique)
    {
        var held = current.Entries;
        if (desired.KeySize != held.KeySize || desired.ValueSize != held.ValueSize)
            return 0;
        int n = Math.Min(desired.Count, held.Count);
        // Whole blocks first (one memory compare each), then entry by entry within the first block that differs.
        const int Block = 256;
        int at = 0;
        while (at + Block <= n && Equal(desired, held, at, Block))
            at += Block;
        while (at < n && Equal(desired, held, at, 1))
            at++;
        // A key held twice counts at its last occurrence (see Reconcile), which a prefix cannot see: no shortcut then.
        // (Asked only when something differs: a map equal throughout never builds its index.)
        if (at == desired.Count && at == held.Count)
            return at;
        return unique || !current.HasDuplicates ? at : 0;

        static bool Equal(PackedEntries a, PackedEntries b, int from, int count) =>
            a.Keys.Slice(from * a.KeySize, count * a.KeySize).SequenceEqual(b.Keys.Slice(from * b.KeySize, count * b.KeySize))
            && a.Values.Slice(from * a.ValueSize, count * a.ValueSize).SequenceEqual(b.Values.Slice(from * b.ValueSize, count * b.ValueSize));
    }

    private PackedIndex Current(MapDecision decision, IMapAccess kernel)
    {
        if (memory.Get(decision.Pin) is { } remembered)
            return remembered;
        progress?.Phase($"reading {decision.Map.CName}");
        return new PackedIndex(kernel.ReadAll(decision.Map.Key.Size, decision.Map.Value.Size, skipZero: decision.Map.Schema.Kind == MapKind.Array));
    }

    public Change Reconcile(MapDecision decision, IMapAccess kernel)
    {
        var map = decision.Map;
        var desired = decision.Desired!;
        bool isArray = map.Schema.Kind == MapKind.Array;
        var zero = new byte[map.Value.Size];
        void Remove(ReadOnlySpan<byte> key)
        {
            if (isArray)
                kernel.Update(key, zero);
            else
                kernel.Delete(key);
        }

        // Compared in memory by span (no allocation per entry, which matters for a million), then only the difference is written, in batches.
        var current = Current(decision, kernel);
        var held = current.Entries;
        var writes = new PackedEntries(map.Key.Size, map.Value.Size);
        // What undo needs: changed entries' old values and the keys that are new.
        var restore = new List<(byte[] Key, byte[] Value)>();
        var added = new PackedEntries(map.Key.Size, map.Value.Size);
        var deleted = new List<(byte[] Key, byte[] Value)>();
        Compare(desired, current,
            desiredOnly: i =>
            {
                added.Add(desired.Key(i), desired.Value(i));
                writes.Add(desired.Key(i), desired.Value(i));
            },
            heldOnly: j => deleted.Add((held.Key(j).ToArray(), held.Value(j).ToArray())),
            both: (i, at) =>
            {
                if (held.Value(at).SequenceEqual(desired.Value(i)))
                    return;
                restore.Add((desired.Key(i).ToArray(), held.Value(at).ToArray()));
                writes.Add(desired.Key(i), desired.Value(i));
            });

        void Undo()
        {
            // Also make-before-break: old values back first, then the keys this change added go.
            foreach (var (key, value) in restore.Concat(deleted))
                kernel.Update(key, value);
            for (int i = 0; i < added.Count; i++)
                Remove(added.Key(i));
        }
        try
        {
            if (writes.Count > 0)
            {
                progress?.Phase($"writing {map.CName}", writes.Count);
                kernel.UpdateMany(writes, done => progress?.Advance(done));
            }
            foreach (var (key, _) in deleted)
                Remove(key);
        }
        catch
        {
            // Part of the batch may have landed: put the map back before the caller gives up on it. If that fails too, the
            // caller forgets what the map holds and the next apply reads it back.
            try
            {
                Undo();
            }
            catch (Exception)
            {
                // The original failure is what the operator needs to read.
            }
            throw;
        }
        int changed = deleted.Count + writes.Count;
        return new Change(decision.Pin, changed, Undo, changed == 0 ? current : null, desired);
    }
}
