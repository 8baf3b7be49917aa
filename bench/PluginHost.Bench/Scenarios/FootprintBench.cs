using PluginHost.Bench.Report;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 6 of issue 5: the real host process, idle with a 4-stage pipeline loaded (<see cref="HostRig"/>).
/// After its pid file appears (the host is fully up) and a settle (10 s in full mode: the runtime's tiered
/// JIT recompiles hot methods in the background for the first seconds), it is left alone for the idle window; CPU is utime + stime of all its threads over the window (/proc/PID/stat, 10 ms ticks), memory
/// is VmRSS at the end of the window (and VmHWM, the peak since start).
/// </summary>
public sealed class FootprintBench(HostRig host, bool quick, Action<string> log)
{
    // USER_HZ: the unit of /proc/PID/stat's times; 100 on every Linux this runs on.
    private const double TicksPerSecond = 100;

    public FootprintResult Run(CancellationToken cancel)
    {
        var idle = TimeSpan.FromSeconds(quick ? 2 : 10);
        var settle = TimeSpan.FromSeconds(quick ? 0.5 : 10);
        cancel.WaitHandle.WaitOne(settle);
        log($"footprint: host pid {host.Pid} up in {host.StartMs:F0} ms; idling {idle.TotalSeconds:F0} s");
        long before = host.CpuTicks();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        // Per-second slices too (in --json): a steady cost and a start-up tail look different.
        var slices = new List<double>();
        long last = before;
        for (int s = 0; s < (int)idle.TotalSeconds; s++)
        {
            var end = TimeSpan.FromSeconds(s + 1);
            if (end > watch.Elapsed)
                cancel.WaitHandle.WaitOne(end - watch.Elapsed);
            cancel.ThrowIfCancellationRequested();
            long now = host.CpuTicks();
            slices.Add((now - last) * 1000 / TicksPerSecond);
            last = now;
        }
        long after = last;
        double seconds = watch.Elapsed.TotalSeconds;
        var (rss, hwm, threads) = host.Memory();
        double cpuMs = (after - before) * 1000 / TicksPerSecond;
        return new FootprintResult(host.Description, host.StartMs, settle.TotalSeconds, seconds, rss / 1024.0, hwm / 1024.0, threads, cpuMs,
            cpuMs / 10 / seconds, 1000 / TicksPerSecond, slices);
    }
}
