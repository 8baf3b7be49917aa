using System.Globalization;

namespace PluginHost.Plugins.LoadBalancer.Maglev;

/// <summary>
/// Builds a Maglev lookup table (Eisenbud et al., NSDI 2016, section 3.4) with Katran's weighting: entry
/// <c>flowHash % size</c> names the backend for a flow. Each backend walks its own permutation of the table
/// (seeded by its key, see <see cref="MaglevHash"/>) and, on each of its turns, claims the first entry of its
/// permutation nobody has claimed yet, until the table is full.
/// <para>Turns (Katran's MaglevHashV2): in round r = 1, 2, … a backend of weight w takes its k-th turn when
/// k × maxWeight ≤ r × w, so the heaviest backends take a turn every round and a backend of weight w takes
/// w / maxWeight as many. Entries go to backends in proportion to their turns. Within a round, heavier backends
/// go first and equal weights go in ordinal order of their keys (Katran goes in list order): the table does not
/// depend on the order of the list.</para>
/// <para>Cost: one turn per entry, each skipping the entries already claimed on its permutation (about ln size
/// on average), plus one check per weight per round; memory is the table and a few words per backend, not
/// Cilium's size × backends permutation matrix. 1 to 3 ms for 65,537 entries (README.md).</para>
/// </summary>
internal static class MaglevTable
{
    /// <summary>Katran's default: a prime with 64 entries for each of up to 1,024 backends.</summary>
    public const int DefaultSize = 65_537;

    /// <summary>4 MiB of 32-bit entries: far more than any share needs (see <see cref="MinEntriesPerBackend"/>).</summary>
    public const int MaxSize = 1 << 20;

    public const int MaxBackends = 1_024;

    public const int MaxWeight = 1_000;

    /// <summary>
    /// The table needs at least this many entries per listed backend (drained ones included, so draining or
    /// restoring a backend never makes a valid list invalid). With equal weights a backend's entry count is
    /// within one of size / backends, so at 64 entries it is within 1/64 (1.6 %) of its fair share; and 64 × 1,024
    /// backends fits the default. (Disruption depends more on the size itself: README.md's measured figures.)
    /// </summary>
    public const int MinEntriesPerBackend = 64;

    /// <summary>The entry of a table with no backend of weight above 0.</summary>
    public const int NoBackend = -1;

    /// <summary>
    /// A table of <paramref name="size"/> entries, each the index in <paramref name="backends"/> of the backend
    /// that serves it, or <see cref="NoBackend"/> everywhere when no backend has a weight above 0.
    /// </summary>
    /// <exception cref="ArgumentException">The size is not a prime, out of range or too small for the backends;
    /// there are too many backends; a key is empty or repeated; or a weight is out of range.</exception>
    public static int[] Build(IReadOnlyList<MaglevBackend> backends, int size = DefaultSize)
    {
        ArgumentNullException.ThrowIfNull(backends);
        CheckSize(size, backends.Count);
        var table = new int[size];
        Fill(backends, table);
        return table;
    }

    /// <summary>
    /// As <see cref="Build"/>, into <paramref name="table"/> (its length is the size): for a caller that reuses
    /// one buffer per bank of a double-buffered map.
    /// </summary>
    public static void Build(IReadOnlyList<MaglevBackend> backends, Span<int> table)
    {
        ArgumentNullException.ThrowIfNull(backends);
        CheckSize(table.Length, backends.Count);
        Fill(backends, table);
    }

    /// <summary>The smallest table size <see cref="Build"/> accepts for <paramref name="backendCount"/> backends.</summary>
    public static int MinimumSize(int backendCount) => NextPrime(Math.Max(2, backendCount * MinEntriesPerBackend));

    public static bool IsPrime(int n)
    {
        if (n < 2)
            return false;
        if (n % 2 == 0)
            return n == 2;
        for (int d = 3; (long)d * d <= n; d += 2)
        {
            if (n % d == 0)
                return false;
        }
        return true;
    }

    private static int NextPrime(int n)
    {
        while (!IsPrime(n))
            n++;
        return n;
    }

    private static int PreviousPrime(int n)
    {
        while (n > 2 && !IsPrime(n))
            n--;
        return n;
    }

    private static string Number(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    private static void CheckSize(int size, int backendCount)
    {
        if (backendCount > MaxBackends)
            throw new ArgumentException($"build maglev table: {Number(backendCount)} backends (at most {Number(MaxBackends)} per table)");
        if (size < 2 || size > MaxSize)
            throw new ArgumentException($"build maglev table: size {size} is out of range (expected a prime up to {Number(MaxSize)}, by default {Number(DefaultSize)})");
        if (!IsPrime(size))
        {
            throw new ArgumentException($"build maglev table: size {size} is not a prime (the nearest primes are " +
                $"{Number(PreviousPrime(size))} and {Number(NextPrime(size))}; the default is {Number(DefaultSize)})");
        }
        if ((long)size < (long)backendCount * MinEntriesPerBackend)
        {
            throw new ArgumentException($"build maglev table: size {size} is too small for {backendCount} backends " +
                $"(need {MinEntriesPerBackend} entries per backend: a prime of at least {Number(MinimumSize(backendCount))})");
        }
    }

    private static void Fill(IReadOnlyList<MaglevBackend> backends, Span<int> table)
    {
        int count = backends.Count;
        int maxWeight = 0;
        for (int i = 0; i < count; i++)
        {
            var backend = backends[i];
            if (string.IsNullOrEmpty(backend.Key))
                throw new ArgumentException($"build maglev table: backend {i} has no key (expected a stable identity such as \"up1 198.18.2.2\")");
            if (backend.Weight < 0 || backend.Weight > MaxWeight)
            {
                throw new ArgumentException($"build maglev table: backend {i} ('{backend.Key}') has weight {backend.Weight} " +
                    $"(expected 1 to {Number(MaxWeight)}, or 0 to drain it)");
            }
            maxWeight = Math.Max(maxWeight, backend.Weight);
        }

        // In key order: repeated keys end up side by side.
        var byKey = new int[count];
        for (int i = 0; i < count; i++)
            byKey[i] = i;
        Array.Sort(byKey, (a, b) => string.CompareOrdinal(backends[a].Key, backends[b].Key));
        for (int r = 1; r < count; r++)
        {
            int a = byKey[r - 1], b = byKey[r];
            if (string.Equals(backends[a].Key, backends[b].Key, StringComparison.Ordinal))
                throw new ArgumentException($"build maglev table: backends {Math.Min(a, b)} and {Math.Max(a, b)} have the same key '{backends[a].Key}' (keys must be unique)");
        }

        table.Fill(NoBackend);
        if (maxWeight == 0)
            return;

        // The active backends in turn order within a round, heavier first, then by key: the list's order plays no part.
        int active = 0;
        foreach (int i in byKey)
        {
            if (backends[i].Weight > 0)
                byKey[active++] = i;
        }
        var order = byKey.AsSpan(0, active);
        order.Sort((a, b) => backends[a].Weight != backends[b].Weight
            ? backends[b].Weight.CompareTo(backends[a].Weight)
            : string.CompareOrdinal(backends[a].Key, backends[b].Key));

        int size = table.Length;
        var next = new int[active]; // per position in order: the next entry of its permutation to try
        var skip = new int[active];
        for (int p = 0; p < active; p++)
            (next[p], skip[p]) = MaglevHash.Permutation(backends[order[p]].Key, size);

        // Backends of one weight take their turns in the same rounds: one group each, [start, end) of order.
        var groupEnd = new int[active];
        var groupWeight = new int[active];
        int groups = 0;
        for (int p = 1; p <= active; p++)
        {
            int weight = backends[order[p - 1]].Weight;
            if (p == active || backends[order[p]].Weight != weight)
            {
                groupWeight[groups] = weight;
                groupEnd[groups++] = p;
            }
        }
        var turns = new long[groups]; // turns each member of the group has taken

        int filled = 0;
        // The heaviest group has a turn every round, so every round fills at least one entry: at most size rounds.
        for (long round = 1; ; round++)
        {
            for (int g = 0, start = 0; g < groups; start = groupEnd[g++])
            {
                // Katran's rule: the k-th turn of weight w comes in the first round r with k × maxWeight ≤ r × w.
                long due = round * groupWeight[g] / maxWeight;
                if (due == turns[g])
                    continue;
                turns[g] = due;
                for (int p = start; p < groupEnd[g]; p++)
                {
                    int entry = next[p], step = skip[p];
                    while (table[entry] != NoBackend)
                    {
                        entry += step;
                        if (entry >= size)
                            entry -= size;
                    }
                    table[entry] = order[p];
                    entry += step;
                    next[p] = entry >= size ? entry - size : entry;
                    if (++filled == size)
                        return;
                }
            }
        }
    }
}
