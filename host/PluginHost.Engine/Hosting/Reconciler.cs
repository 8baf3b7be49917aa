using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using PluginHost.Config;

namespace PluginHost.Hosting;

/// <summary>Something that may change the desired state: a file changed, a reload was asked for.</summary>
/// <param name="Urgent">Apply without waiting for the burst to settle (an interface that routes use went away: its
/// packets are lost until the apply withdraws them).</param>
public sealed record Trigger(string Source, string Detail, bool Urgent = false);

/// <summary>
/// The single writer of the datapath. Every trigger lands in one channel; one loop reads it, lets a
/// burst settle, re-reads the configuration and the plugins (the desired-state snapshot) and applies
/// it. Changes are serialised, bursts coalesce, and an unchanged snapshot swaps nothing.
/// </summary>
public sealed partial class Reconciler(string configPath, HostEngine engine, ILogger logger)
{
    /// <summary>A burst is over when no trigger came for this long.</summary>
    public static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(100);

    /// <summary>A never-ending burst is still applied at least this often.</summary>
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(1);

    // Triggers and work items (API calls that must run on the single writer) share one queue, in order.
    private readonly Channel<object> _triggers = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });

    private sealed record WorkItem(Func<HostEngine, object?> Work, TaskCompletionSource<object?> Done);
    private int _passes;
    private int _failures;

    /// <summary>Apply passes run so far (each may coalesce many triggers).</summary>
    public int Passes => Volatile.Read(ref _passes);

    /// <summary>Passes that failed (the running datapath was kept).</summary>
    public int Failures => Volatile.Read(ref _failures);

    /// <summary>The configuration file this host follows.</summary>
    public string ConfigPath => configPath;

    /// <summary>Queue a trigger; never blocks.</summary>
    public void Post(Trigger trigger) => _triggers.Writer.TryWrite(trigger);

    /// <summary>The source of an operator's reload request (SIGHUP), as opposed to a watched file changing.</summary>
    public const string ReloadSource = "reload";

    /// <summary>Run <paramref name="work"/> on the reconciler's loop (after what is queued before it) and return its result.</summary>
    public async Task<T> InvokeAsync<T>(Func<HostEngine, T> work)
    {
        var done = new TaskCompletionSource<object?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _triggers.Writer.TryWrite(new WorkItem(e => work(e), done));
        return (T)(await done.Task)!;
    }

    /// <summary>Read triggers until <paramref name="stop"/>; between bursts, retire generations whose grace period ended.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var reader = _triggers.Reader;
        while (!stop.IsCancellationRequested)
        {
            using (var tick = CancellationTokenSource.CreateLinkedTokenSource(stop))
            {
                tick.CancelAfter(TimeSpan.FromSeconds(1));
                try
                {
                    await reader.WaitToReadAsync(tick.Token);
                }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                {
                    Housekeeping();
                    continue;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            if (reader.TryPeek(out var next) && next is WorkItem)
            {
                reader.TryRead(out _);
                RunWork((WorkItem)next);
                continue;
            }
            var burst = await CollectBurstAsync(reader, stop);
            if (burst.Count > 0)
                ApplyOnce(burst);
        }
    }

    // Between bursts: retire what is due, and put back pins removed by hand before a missing prog array costs traffic.
    private void Housekeeping()
    {
        try
        {
            engine.RetireDue();
            engine.Audit();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or HostException)
        {
            LogHousekeepingFailed(e.Message);
        }
    }

    private void RunWork(WorkItem item)
    {
        try
        {
            item.Done.SetResult(item.Work(engine));
        }
        catch (Exception e)
        {
            item.Done.SetException(e);
        }
    }

    // A burst of triggers ends at the first work item: that runs next, in order.
    private async Task<List<Trigger>> CollectBurstAsync(ChannelReader<object> reader, CancellationToken stop)
    {
        var burst = new List<Trigger>();
        var started = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            while (reader.TryPeek(out var item) && item is Trigger t)
            {
                reader.TryRead(out _);
                burst.Add(t);
            }
            if (reader.TryPeek(out _))
                return burst;
            if (started.Elapsed >= MaxDelay || burst.Any(t => t.Urgent))
                return burst;
            using var quiet = CancellationTokenSource.CreateLinkedTokenSource(stop);
            quiet.CancelAfter(Quiet);
            try
            {
                await reader.WaitToReadAsync(quiet.Token);
            }
            catch (OperationCanceledException)
            {
                return burst; // quiet long enough (or stopping): apply what we have
            }
        }
    }

    private void ApplyOnce(List<Trigger> burst)
    {
        Interlocked.Increment(ref _passes);
        string why = string.Join(", ", burst.Select(t => t.Source).Distinct());
        LogPass(burst.Count, why);
        try
        {
            if (burst.Any(t => t.Source == ReloadSource))
                engine.Reload(configPath);
            else
            {
                engine.Reconfigure(ConfigLoader.Load(configPath));
                engine.Apply();
            }
        }
        catch (Exception e)
        {
            // Everything an apply throws ends here, out-of-memory included: the loop and the running datapath go on.
            Interlocked.Increment(ref _failures);
            // Say what happened: a commit that could not be reverted everywhere left some pipelines on the new generation.
            if (e is Datapath.CommitFailedException { DatapathUnchanged: false })
                LogFailedPartly(e.Message);
            else
                LogFailed(e.Message);
        }
    }

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "housekeeping (retire, pin audit) failed, retried in a second: {Error}")]
    private partial void LogHousekeepingFailed(string error);

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "reloading after {Count} trigger(s): {Why}")]
    private partial void LogPass(int count, string why);

    [LoggerMessage(EventId = 301, Level = LogLevel.Error, Message = "reload failed; the running datapath is unchanged: {Error}")]
    private partial void LogFailed(string error);

    [LoggerMessage(EventId = 302, Level = LogLevel.Error, Message = "reload failed and could not be undone everywhere; where each pipeline stands: {Error}")]
    private partial void LogFailedPartly(string error);
}
