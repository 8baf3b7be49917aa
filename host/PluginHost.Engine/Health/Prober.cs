using Microsoft.Extensions.Logging;
using PluginHost.Contract;
using PluginHost.Hosting;
using PluginHost.Net;

namespace PluginHost.Health;

/// <summary>
/// Runs the probes the applied configuration declares (<see cref="HealthProbes.Current"/>), one loop each: a probe starts every
/// interval (measured from the previous start, so a slow answer does not stretch the period) and reports its result to
/// <see cref="HealthProbes"/>. A state change posts a trigger to the reconciler, the single writer, which applies the
/// configuration again with the new state (a target going down is urgent: until the apply, flows still go to it). Follows the
/// set of probes after each apply: an unchanged probe's loop keeps running.
/// </summary>
public sealed partial class Prober : IDisposable
{
    public const string Source = "probe";

    /// <summary>Runs one probe: success, or why it failed.</summary>
    public delegate Task<ProbeResult> ProbeRun(ProbeSpec spec, CancellationToken stop);

    private readonly HealthProbes _probes;
    private readonly Action<Trigger> _post;
    private readonly ProbeRun _probe;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string, int, string), (ProbeSpec Spec, CancellationTokenSource Stop, Task Loop)> _loops = [];
    private bool _disposed;

    public Prober(HealthProbes probes, Action<Trigger> post, ILogger logger, ProbeRun? probe = null, TimeProvider? time = null)
    {
        _probes = probes;
        _post = post;
        _log = logger;
        _probe = probe ?? RunAsync;
        _time = time ?? TimeProvider.System;
        _probes.Changed += Follow;
        Follow();
    }

    /// <summary>The probes running now.</summary>
    public int Running
    {
        get
        {
            lock (_gate)
                return _loops.Count;
        }
    }

    /// <summary>The real probe: ICMP echo or TCP connect, in the pipeline's namespace, out of the probe's interface.</summary>
    public static async Task<ProbeResult> RunAsync(ProbeSpec spec, CancellationToken stop)
    {
        var p = spec.Probe;
        string? error = p.Kind == ProbeKind.Icmp
            ? await Reachability.EchoAsync(spec.Namespace, p.Interface, p.Target, p.Timeout, stop)
            : await Reachability.ConnectAsync(spec.Namespace, p.Interface, p.Target, p.Port, p.Timeout, stop);
        return new ProbeResult(error);
    }

    private void Follow()
    {
        List<Task> stopped = [];
        lock (_gate)
        {
            if (_disposed)
                return;
            var wanted = _probes.Current.ToDictionary(s => s.Key);
            foreach (var (key, loop) in _loops.ToList())
                if (!wanted.TryGetValue(key, out var spec) || spec != loop.Spec)
                {
                    loop.Stop.Cancel();
                    _loops.Remove(key);
                }
            foreach (var (key, spec) in wanted)
            {
                if (_loops.ContainsKey(key))
                    continue;
                var stop = new CancellationTokenSource();
                _loops[key] = (spec, stop, Task.Run(() => LoopAsync(spec, stop.Token)));
            }
        }
    }

    private async Task LoopAsync(ProbeSpec spec, CancellationToken stop)
    {
        var interval = spec.Probe.Interval;
        while (!stop.IsCancellationRequested)
        {
            long started = _time.GetTimestamp();
            ProbeResult result;
            try
            {
                result = await _probe(spec, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Whatever failed, the probe failed: a loop that ended here would leave its backend at its last state.
                result = ProbeResult.Failure(e is HostException or System.Net.Sockets.SocketException or IOException ? e.Message : $"{e.GetType().Name}: {e.Message}");
            }
            if (stop.IsCancellationRequested)
                return;
            if (_probes.Record(spec, result) is { } change)
                _post(new Trigger(Source, $"probe {spec.Probe.Name} of pipeline {spec.Pipeline} stage {spec.Stage} is {change.To.ToString().ToLowerInvariant()}",
                    Urgent: change.To == ProbeState.Down));
            var wait = interval - _time.GetElapsedTime(started);
            try
            {
                if (wait > TimeSpan.Zero)
                    await Task.Delay(wait, _time, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public void Dispose()
    {
        _probes.Changed -= Follow;
        List<(ProbeSpec, CancellationTokenSource Stop, Task Loop)> loops;
        lock (_gate)
        {
            _disposed = true;
            loops = _loops.Values.ToList();
            _loops.Clear();
        }
        foreach (var l in loops)
            l.Stop.Cancel();
        // A probe waits at most its timeout: the loops end soon; a stuck one is left to the process's end.
        if (!Task.WaitAll(loops.Select(l => l.Loop).ToArray(), TimeSpan.FromSeconds(2)))
            LogStopSlow();
        foreach (var l in loops)
            l.Stop.Dispose();
    }

    [LoggerMessage(EventId = 323, Level = LogLevel.Warning, Message = "stop probes: some did not end within 2 s")]
    private partial void LogStopSlow();
}
