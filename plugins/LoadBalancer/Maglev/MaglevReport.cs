namespace PluginHost.Plugins.LoadBalancer.Maglev;

/// <summary>A backend's part of a table.</summary>
/// <param name="Entries">Entries that name it.</param>
/// <param name="Share">Entries ÷ table size.</param>
/// <param name="WeightShare">Its weight ÷ the sum of the weights (0 when all are drained): the share it should get.</param>
internal sealed record BackendShare(string Key, int Weight, int Entries, double Share, double WeightShare);

/// <summary>How a table changed between two builds, comparing entries by backend key (indices differ between lists).</summary>
/// <param name="Entries">The table size.</param>
/// <param name="Changed">Entries whose backend (key, or none) differs.</param>
/// <param name="Minimal">
/// The fewest entries any table could change given both tables' entries per backend: the entries backends lost,
/// Σ max(0, before − after). A perfect consistent hash changes exactly this many.
/// </param>
/// <param name="KeptEntries">Entries that pointed to a backend with weight above 0 in both lists.</param>
/// <param name="KeptMoved">Of those, entries that point to another backend now.</param>
/// <param name="MovedBetweenKept">Entries moved from one kept backend to another: churn that neither a removal nor
/// an addition needs (a weight change does need some).</param>
internal sealed record TableChange(int Entries, int Changed, int Minimal, int KeptEntries, int KeptMoved, int MovedBetweenKept)
{
    public double ChangedFraction => Fraction(Changed, Entries);

    public double MinimalFraction => Fraction(Minimal, Entries);

    public double KeptMovedFraction => Fraction(KeptMoved, KeptEntries);

    public double MovedBetweenKeptFraction => Fraction(MovedBetweenKept, Entries);

    private static double Fraction(int part, int whole) => whole == 0 ? 0 : part / (double)whole;
}

/// <summary>Figures about built tables, for tests, the bench and validate.</summary>
internal static class MaglevReport
{
    /// <summary>Each backend's entries and share, in list order.</summary>
    public static BackendShare[] Shares(IReadOnlyList<MaglevBackend> backends, ReadOnlySpan<int> table)
    {
        ArgumentNullException.ThrowIfNull(backends);
        var counts = Count(backends, table, "report maglev shares");
        long weights = 0;
        foreach (var backend in backends)
            weights += backend.Weight;
        var shares = new BackendShare[backends.Count];
        for (int i = 0; i < shares.Length; i++)
        {
            var backend = backends[i];
            shares[i] = new BackendShare(backend.Key, backend.Weight, counts[i],
                table.Length == 0 ? 0 : counts[i] / (double)table.Length,
                weights == 0 ? 0 : backend.Weight / (double)weights);
        }
        return shares;
    }

    /// <summary>What changed from <paramref name="before"/> (built for <paramref name="beforeBackends"/>) to <paramref name="after"/>.</summary>
    public static TableChange Compare(IReadOnlyList<MaglevBackend> beforeBackends, ReadOnlySpan<int> before,
        IReadOnlyList<MaglevBackend> afterBackends, ReadOnlySpan<int> after)
    {
        ArgumentNullException.ThrowIfNull(beforeBackends);
        ArgumentNullException.ThrowIfNull(afterBackends);
        if (before.Length != after.Length)
            throw new ArgumentException($"compare maglev tables: sizes {before.Length} and {after.Length} differ");
        Count(beforeBackends, before, "compare maglev tables");
        Count(afterBackends, after, "compare maglev tables");

        // One id per key across both lists; id 0 stands for "no backend".
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        int[] beforeIds = IdsOf(beforeBackends, ids), afterIds = IdsOf(afterBackends, ids);
        var kept = new bool[ids.Count + 1];
        var activeBefore = new bool[ids.Count + 1];
        for (int i = 0; i < beforeBackends.Count; i++)
            activeBefore[beforeIds[i]] = beforeBackends[i].Weight > 0;
        for (int i = 0; i < afterBackends.Count; i++)
            kept[afterIds[i]] = activeBefore[afterIds[i]] && afterBackends[i].Weight > 0;

        var countBefore = new int[ids.Count + 1];
        var countAfter = new int[ids.Count + 1];
        int changed = 0, keptEntries = 0, keptMoved = 0, betweenKept = 0;
        for (int e = 0; e < before.Length; e++)
        {
            int from = before[e] < 0 ? 0 : beforeIds[before[e]];
            int to = after[e] < 0 ? 0 : afterIds[after[e]];
            countBefore[from]++;
            countAfter[to]++;
            if (kept[from])
                keptEntries++;
            if (from == to)
                continue;
            changed++;
            if (kept[from])
            {
                keptMoved++;
                if (kept[to])
                    betweenKept++;
            }
        }
        int minimal = 0;
        for (int id = 0; id < countBefore.Length; id++)
            minimal += Math.Max(0, countBefore[id] - countAfter[id]);
        return new TableChange(before.Length, changed, minimal, keptEntries, keptMoved, betweenKept);
    }

    private static int[] IdsOf(IReadOnlyList<MaglevBackend> backends, Dictionary<string, int> ids)
    {
        var result = new int[backends.Count];
        for (int i = 0; i < result.Length; i++)
        {
            string key = backends[i].Key;
            if (!ids.TryGetValue(key, out int id))
                ids.Add(key, id = ids.Count + 1);
            result[i] = id;
        }
        return result;
    }

    private static int[] Count(IReadOnlyList<MaglevBackend> backends, ReadOnlySpan<int> table, string what)
    {
        var counts = new int[backends.Count];
        for (int e = 0; e < table.Length; e++)
        {
            int backend = table[e];
            if (backend == MaglevTable.NoBackend)
                continue;
            if ((uint)backend >= (uint)counts.Length)
                throw new ArgumentException($"{what}: entry {e} names backend {backend}, but the list has {counts.Length}");
            counts[backend]++;
        }
        return counts;
    }
}
