using System.Diagnostics;
using PluginHost.Datapath;
using PluginHost.TestSupport;
using Xunit.Abstractions;

namespace PluginHost.Tests.Support;

/// <summary>
/// The real `pluginhost run` processes a lab test starts: their output goes to the test's log, and whatever is still
/// running when the test ends (an assertion failed half-way) is killed by its PID.
/// </summary>
public sealed class HostProcesses(ITestOutputHelper output) : IDisposable
{
    private readonly List<Process> _started = [];

    /// <summary>Start `pluginhost run --config <paramref name="configPath"/>`, armed to die at <paramref name="faultPoint"/> when given.</summary>
    public Process Start(string configPath, string? faultPoint = null)
    {
        var psi = new ProcessStartInfo(Path.Combine(Repo.Root, "artifacts", "pluginhost", "pluginhost"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add("run");
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(configPath);
        if (faultPoint is not null)
            psi.Environment[FaultPoints.Variable] = faultPoint;
        var process = Process.Start(psi)!;
        string tag = faultPoint ?? "host";
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) output.WriteLine($"{tag}: {e.Data}"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.WriteLine($"{tag}! {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _started.Add(process);
        return process;
    }

    /// <summary>Wait for <paramref name="condition"/>, at most <paramref name="timeout"/> (30 s by default).</summary>
    public static void WaitFor(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        if (!SpinWait.SpinUntil(condition, limit))
            throw new TimeoutException($"waited {limit.TotalSeconds:0.#} s for {what}");
    }

    public void Dispose()
    {
        foreach (var host in _started)
        {
            if (!host.HasExited)
                host.Kill(entireProcessTree: true);
            host.Dispose();
        }
    }
}
