using PluginHost.Contract;

namespace PluginHost.Health;

/// <summary>One probe's result: null error is a success.</summary>
/// <param name="Error">Why it failed ("timeout after 200 ms", "connection refused"), or null.</param>
public readonly record struct ProbeResult(string? Error)
{
    public bool Ok => Error is null;

    public static ProbeResult Success => default;

    public static ProbeResult Failure(string error) => new(error);
}

/// <summary>A state change of a probe, as <see cref="ProbeHealth.Record"/> reports it.</summary>
/// <param name="Count">The failures (to down) or successes (to up) in a row that made it.</param>
/// <param name="Duration">How long the previous state lasted.</param>
public sealed record ProbeTransition(ProbeState From, ProbeState To, int Count, TimeSpan Duration, string? Error);

/// <summary>
/// The state machine of one probe: <see cref="Probe.FailuresToDown"/> failures in a row make it down,
/// <see cref="Probe.SuccessesToUp"/> successes in a row make it up, from Unknown as from the other state. A result
/// of the other kind resets the run. Not thread-safe: <see cref="HealthProbes"/> holds its lock around it.
/// </summary>
public sealed class ProbeHealth(DateTimeOffset since)
{
    public ProbeState State { get; private set; } = ProbeState.Unknown;

    /// <summary>When the state last changed (when the probe was first declared, for Unknown).</summary>
    public DateTimeOffset Since { get; private set; } = since;

    public int Failures { get; private set; }

    public int Successes { get; private set; }

    /// <summary>The last failure's reason (kept after successes, so <c>status</c> says why it was last down).</summary>
    public string? LastError { get; private set; }

    public DateTimeOffset? LastChecked { get; private set; }

    /// <summary>Count one result; returns the transition it caused, or null.</summary>
    public ProbeTransition? Record(ProbeResult result, int failuresToDown, int successesToUp, DateTimeOffset now)
    {
        LastChecked = now;
        if (result.Ok)
        {
            Failures = 0;
            Successes++;
            return Successes >= successesToUp && State != ProbeState.Up ? Change(ProbeState.Up, Successes, now) : null;
        }
        LastError = result.Error;
        Successes = 0;
        Failures++;
        return Failures >= failuresToDown && State != ProbeState.Down ? Change(ProbeState.Down, Failures, now) : null;
    }

    private ProbeTransition Change(ProbeState to, int count, DateTimeOffset now)
    {
        var transition = new ProbeTransition(State, to, count, now - Since, to == ProbeState.Down ? LastError : null);
        State = to;
        Since = now;
        return transition;
    }
}
