namespace PluginHost.Bench.Measure;

/// <summary>
/// How much to measure. A sample is <see cref="CallsPerSample"/> BPF_PROG_TEST_RUN calls with
/// <see cref="Repeat"/> repeats each; every figure is the median of <see cref="Samples"/> samples,
/// taken round-robin across the programs compared so that noise hits them alike.
/// </summary>
/// <param name="Repeat">At most 250: the program runs on the same buffer each repeat, and a forwarding
/// program decrements the TTL (255 in the frames) every time.</param>
/// <param name="RandomFrames">Distinct frames (random source addresses) per lookup sample.</param>
/// <param name="RandomRepeat">Repeats per random frame: 1, so that every lookup is of a different address.</param>
/// <param name="ReloadRuns">Applies per kind of reload.</param>
/// <param name="Placements">Loads of each baseline and chain in the per-packet section, measured in turn round by round:
/// where the JIT places a program moves its cost by a few percent from one load to the next.</param>
public sealed record Sampling(int Samples, int CallsPerSample, int Repeat, int RandomFrames, int RandomRepeat, int ReloadRuns,
    IReadOnlyList<int> TableSizes, int Placements)
{
    public static Sampling Full { get; } = new(31, 400, 250, 4096, 1, 20, [10, 1_000, 100_000, 1_000_000], 3);

    public static Sampling Quick { get; } = new(5, 100, 250, 4096, 1, 5, [10, 1_000, 100_000], 1);

    public long PacketsPerSample => (long)CallsPerSample * Repeat;
}
