using PluginHost.Interop;
using PluginHost.Kernel;

namespace PluginHost.Bench.Measure;

/// <summary>
/// ns per packet as the kernel itself times it: BPF_PROG_TEST_RUN runs the program <c>repeat</c> times on
/// one buffer and reports the mean time per run (whole ns, rounded down) measured around the loop, so
/// the syscall and the copying of the packet are not included.
/// </summary>
public static class TestRunTimer
{
    private const int EINTR = 4;

    /// <summary>Mean over <paramref name="calls"/> calls of one frame, after one warm-up call.</summary>
    public static double Repeated(BpfProgram program, byte[] frame, int calls, int repeat, CancellationToken cancel)
    {
        Time(program, frame, repeat, cancel);
        double sum = 0;
        for (int i = 0; i < calls; i++)
            sum += Time(program, frame, repeat, cancel);
        return sum / calls;
    }

    /// <summary>
    /// One call per frame of <paramref name="frames"/> (in a fresh random order), each followed by one call of
    /// <paramref name="reference"/>: the two means, taken under the same conditions call by call.
    /// </summary>
    public static (double Frames, double Reference) Alternating(BpfProgram program, IReadOnlyList<byte[]> frames, byte[] reference,
        int repeat, Random order, CancellationToken cancel)
    {
        var indexes = Enumerable.Range(0, frames.Count).ToArray();
        order.Shuffle(indexes);
        double sum = 0, referenceSum = 0;
        foreach (int i in indexes)
        {
            sum += Time(program, frames[i], repeat, cancel);
            referenceSum += Time(program, reference, repeat, cancel);
        }
        return (sum / frames.Count, referenceSum / frames.Count);
    }

    /// <summary>
    /// One call per frame of <paramref name="frames"/> (in a fresh random order), each repeated <paramref name="repeat"/> times
    /// on its buffer: the mean over the frames of each one's own cost (its path through the tables, caches warm).
    /// </summary>
    public static double PerFrame(BpfProgram program, IReadOnlyList<byte[]> frames, int repeat, Random order, CancellationToken cancel)
    {
        var indexes = Enumerable.Range(0, frames.Count).ToArray();
        order.Shuffle(indexes);
        double sum = 0;
        foreach (int i in indexes)
            sum += Time(program, frames[i], repeat, cancel);
        return sum / frames.Count;
    }

    // The kernel abandons a test run when a signal is pending (EINTR): Ctrl-C means stop, anything else
    // (a child process exiting, say) means run it again.
    private static uint Time(BpfProgram program, byte[] frame, int repeat, CancellationToken cancel)
    {
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            try
            {
                return program.TestRun(frame, repeat).DurationNs;
            }
            catch (BpfException e) when (Math.Abs(e.Errno) == EINTR)
            {
            }
        }
    }
}
