using System.Diagnostics;
using PluginHost.Kernel;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Bpf;

public sealed class RcuFenceTests(ITestOutputHelper output)
{
    [KernelFact]
    public void TheFenceWaitsForAGracePeriodEachTime()
    {
        using var fence = new RcuFence();
        var times = new List<double>();
        for (int i = 0; i < 20; i++)
        {
            var watch = Stopwatch.StartNew();
            fence.Wait();
            times.Add(watch.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        output.WriteLine($"fence wait: min {times[0]:F3} ms, p50 {times[10]:F3} ms, max {times[^1]:F3} ms");
        // A grace period is never free: an update that returned at syscall speed (a few µs) waited for nothing.
        Assert.True(times[0] > 0.05, $"the fastest wait took {times[0]:F3} ms");
    }
}
