using System.Text.Json;
using Microsoft.Extensions.Logging;
using PluginHost.Contract;
using PluginHost.Observe;
using PluginHost.Pipelines;

namespace PluginHost.Health;

/// <summary>A probe the applied configuration declares: where it runs and what it checks (host-owned).</summary>
/// <param name="Namespace">The pipeline's network namespace (null: the host's).</param>
public sealed record ProbeSpec(string Pipeline, string? Namespace, int Stage, string Plugin, Probe Probe)
{
    public (string Pipeline, int Stage, string Name) Key => (Pipeline, Stage, Probe.Name);

    /// <summary>What the probe checks: a probe whose target this changes starts again from Unknown.</summary>
    public bool SameTarget(ProbeSpec other) => Namespace == other.Namespace && Probe.Interface == other.Probe.Interface
        && Probe.Target.Equals(other.Probe.Target) && Probe.Kind == other.Probe.Kind && Probe.Port == other.Probe.Port;

    /// <summary>"icmp 198.18.3.2 via up2", "tcp [2001:db8::2]:80 via up2".</summary>
    public string Describe() => Probe.Kind == ProbeKind.Icmp
        ? $"icmp {Probe.Target} via {Probe.Interface}"
        : $"tcp {new System.Net.IPEndPoint(Probe.Target, Probe.Port)} via {Probe.Interface}";
}

/// <summary>One probe as <c>status</c> shows it (<c>RUNTIME/probes.json</c>).</summary>
public sealed record ProbeStatus(int Stage, string Plugin, string Probe, ProbeKind Kind, string Interface, string Target, int Port,
    ProbeState State, DateTimeOffset Since, string? LastError, DateTimeOffset? LastChecked, int Failures, int Successes,
    double IntervalMs, double TimeoutMs, int FailuresToDown, int SuccessesToUp);

/// <summary>
/// The probes the applied configuration declares and their states: <c>Configure</c> reads them (through the stage context),
/// <see cref="Prober"/> runs them and reports each result here. A state change is logged and saved to
/// <c>RUNTIME/probes.json</c> for <c>status</c>; the prober then asks the reconciler to apply again. The set follows each apply:
/// probes added start Unknown, probes removed are dropped, a probe whose target is unchanged keeps its state and counts.
/// </summary>
public sealed partial class HealthProbes(ILogger logger, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Lock _gate = new();
    private Dictionary<(string, int, string), (ProbeSpec Spec, ProbeHealth Health)> _probes = [];
    private string? _runtimeDirectory;

    /// <summary>Raised after an apply changed the set of probes (or one's settings): the prober follows it.</summary>
    public event Action? Changed;

    /// <summary>The probes to run now.</summary>
    public IReadOnlyList<ProbeSpec> Current
    {
        get
        {
            lock (_gate)
                return _probes.Values.Select(p => p.Spec).ToList();
        }
    }

    /// <summary>The state of probe <paramref name="name"/> of stage <paramref name="stage"/> of <paramref name="pipeline"/>; Unknown if not running.</summary>
    public ProbeState StateOf(string pipeline, int stage, string name)
    {
        lock (_gate)
            return _probes.TryGetValue((pipeline, stage, name), out var p) ? p.Health.State : ProbeState.Unknown;
    }

    /// <summary>Take in the probes an apply declared (every pipeline of the configuration is in <paramref name="planned"/>).</summary>
    public void Applied(string runtimeDirectory, IReadOnlyList<PlannedPipeline> planned)
    {
        var now = _time.GetUtcNow();
        bool changed;
        lock (_gate)
        {
            _runtimeDirectory = runtimeDirectory;
            var next = new Dictionary<(string, int, string), (ProbeSpec, ProbeHealth)>();
            foreach (var p in planned)
                for (int stage = 0; stage < p.Plan.Stages.Count; stage++)
                    foreach (var probe in p.Plan.Stages[stage].Probes)
                    {
                        var spec = new ProbeSpec(p.Config.Name, p.Config.Namespace, stage, p.Plan.Stages[stage].PluginName, probe);
                        next[spec.Key] = _probes.TryGetValue(spec.Key, out var old) && old.Spec.SameTarget(spec)
                            ? (spec, old.Health)
                            : (spec, new ProbeHealth(now));
                    }
            changed = next.Count != _probes.Count || next.Any(n => !_probes.TryGetValue(n.Key, out var o) || o.Spec != n.Value.Item1);
            _probes = next;
            Save();
        }
        if (changed)
            Changed?.Invoke();
    }

    /// <summary>
    /// Count one result of <paramref name="spec"/>; returns the state change it caused (logged and saved), or null. A result of
    /// a probe the configuration no longer declares (or declares otherwise) is ignored.
    /// </summary>
    public ProbeTransition? Record(ProbeSpec spec, ProbeResult result)
    {
        lock (_gate)
        {
            if (!_probes.TryGetValue(spec.Key, out var p) || p.Spec != spec)
                return null;
            string? lastError = p.Health.LastError;
            var transition = p.Health.Record(result, spec.Probe.FailuresToDown, spec.Probe.SuccessesToUp, _time.GetUtcNow());
            if (transition is null)
            {
                // A new reason while down ("timeout" became "connection refused"): status says the latest.
                if (p.Health.State == ProbeState.Down && p.Health.LastError != lastError)
                    Save();
                return null;
            }
            if (transition.To == ProbeState.Down)
                LogDown(spec.Pipeline, spec.Stage, spec.Probe.Name, spec.Describe(), transition.Count, transition.Error ?? "");
            else
                LogUp(spec.Pipeline, spec.Stage, spec.Probe.Name, spec.Describe(), transition.Count,
                    transition.From == ProbeState.Unknown ? "unknown" : "down", transition.Duration.TotalSeconds);
            Save();
            return transition;
        }
    }

    /// <summary>What <c>status</c> shows, by pipeline.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<ProbeStatus>> Snapshot()
    {
        lock (_gate)
            return _probes.Values.GroupBy(p => p.Spec.Pipeline).ToDictionary(g => g.Key,
                g => (IReadOnlyList<ProbeStatus>)g.OrderBy(p => p.Spec.Stage).ThenBy(p => p.Spec.Probe.Name, StringComparer.Ordinal)
                    .Select(p => StatusOf(p.Spec, p.Health)).ToList());
    }

    private static ProbeStatus StatusOf(ProbeSpec s, ProbeHealth h) => new(s.Stage, s.Plugin, s.Probe.Name, s.Probe.Kind, s.Probe.Interface,
        s.Probe.Target.ToString(), s.Probe.Port, h.State, h.Since, h.LastError, h.LastChecked, h.Failures, h.Successes,
        s.Probe.Interval.TotalMilliseconds, s.Probe.Timeout.TotalMilliseconds, s.Probe.FailuresToDown, s.Probe.SuccessesToUp);

    // Under the lock. Best effort: a failed write only costs what status shows until the next change.
    private void Save()
    {
        if (_runtimeDirectory is null)
            return;
        try
        {
            ProbeFile.Save(_runtimeDirectory, Snapshot());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogSaveFailed(e.Message);
        }
    }

    [LoggerMessage(EventId = 320, Level = LogLevel.Warning, Message = "pipeline {Pipeline} stage {Stage}: probe {Probe} ({Target}) is down after {Count} failures in a row: {Error}")]
    private partial void LogDown(string pipeline, int stage, string probe, string target, int count, string error);

    [LoggerMessage(EventId = 321, Level = LogLevel.Information, Message = "pipeline {Pipeline} stage {Stage}: probe {Probe} ({Target}) is up after {Count} successes in a row ({Was} for {Seconds:F1} s)")]
    private partial void LogUp(string pipeline, int stage, string probe, string target, int count, string was, double seconds);

    [LoggerMessage(EventId = 322, Level = LogLevel.Warning, Message = "save probe states for status: {Error}")]
    private partial void LogSaveFailed(string error);
}

/// <summary><c>RUNTIME/probes.json</c>: each pipeline's probes and their states, for <c>status</c> (read with no host running).</summary>
public static class ProbeFile
{
    public static string FilePath(string runtimeDirectory) => Path.Combine(runtimeDirectory, "probes.json");

    public static IReadOnlyDictionary<string, IReadOnlyList<ProbeStatus>> Load(string runtimeDirectory)
    {
        string path = FilePath(runtimeDirectory);
        try
        {
            if (File.Exists(path))
                return JsonSerializer.Deserialize<Contents>(File.ReadAllText(path), HostJson.Options)?.Pipelines ?? Empty;
        }
        catch (JsonException)
        {
            // A damaged file only loses what status shows: the host writes it again on the next change.
        }
        return Empty;
    }

    internal static void Save(string runtimeDirectory, IReadOnlyDictionary<string, IReadOnlyList<ProbeStatus>> pipelines)
    {
        Directory.CreateDirectory(runtimeDirectory);
        Datapath.PrivateFile.WriteIfChanged(FilePath(runtimeDirectory), JsonSerializer.Serialize(new Contents(pipelines), HostJson.Options));
    }

    private static readonly IReadOnlyDictionary<string, IReadOnlyList<ProbeStatus>> Empty = new Dictionary<string, IReadOnlyList<ProbeStatus>>();

    private sealed record Contents(IReadOnlyDictionary<string, IReadOnlyList<ProbeStatus>> Pipelines);
}
