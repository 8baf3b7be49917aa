using System.Net;

namespace PluginHost.Contract;

/// <summary>What a probe sends (contract 2.3).</summary>
public enum ProbeKind
{
    /// <summary>An ICMP (ICMPv6 for an IPv6 target) echo request; a matching echo reply is a success.</summary>
    Icmp,
    /// <summary>A TCP connect to <see cref="Probe.Port"/>; an accepted connection is a success (then reset at once).</summary>
    Tcp,
}

/// <summary>What the host knows of a probe's target (contract 2.3).</summary>
public enum ProbeState
{
    /// <summary>Not decided yet: the probe is new (or the host just started, or is an older host without probes). Treat it
    /// as up: a fresh start must not take every backend out before the first probes answered.</summary>
    Unknown,
    /// <summary><see cref="Probe.SuccessesToUp"/> probes in a row succeeded.</summary>
    Up,
    /// <summary><see cref="Probe.FailuresToDown"/> probes in a row failed.</summary>
    Down,
}

/// <summary>
/// A health probe the host runs for a stage (contract 2.3), declared in <see cref="StageSetup.Probes"/>: every
/// <see cref="Interval"/>, in the pipeline's network namespace, sent out of <see cref="Interface"/> (SO_BINDTODEVICE) to
/// <see cref="Target"/>. When its state changes the host applies the configuration again, and <c>Configure</c> reads the new
/// state with <see cref="IStageContext.ProbeState"/>. A probe keeps its state and counts across applies while its name,
/// interface, target, kind and port stay the same.
/// </summary>
/// <param name="Name">Unique within the stage: 1 to 64 letters, digits, '.', '-', '_', ':' or '/' (a backend's name, say).</param>
/// <param name="Interface">The interface the probe leaves by (a backend's output interface).</param>
/// <param name="Target">The address probed (a backend's next hop), IPv4 or IPv6.</param>
/// <param name="Kind">ICMP echo or TCP connect.</param>
public sealed record Probe(string Name, string Interface, IPAddress Target, ProbeKind Kind)
{
    /// <summary>The TCP port (1 to 65535) of a <see cref="ProbeKind.Tcp"/> probe; 0 for ICMP.</summary>
    public int Port { get; init; }

    /// <summary>Time between the starts of two probes: 100 ms to 1 hour.</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one probe waits for its answer: at least 10 ms, less than <see cref="Interval"/>.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Failures in a row that make the target down: 1 to 100.</summary>
    public int FailuresToDown { get; init; } = 3;

    /// <summary>Successes in a row that make the target up: 1 to 100.</summary>
    public int SuccessesToUp { get; init; } = 2;
}
