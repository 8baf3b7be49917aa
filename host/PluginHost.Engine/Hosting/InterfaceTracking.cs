using Microsoft.Extensions.Logging;
using PluginHost.Net;
using PluginHost.Observe;
using PluginHost.Pipelines;

namespace PluginHost.Hosting;

/// <summary>
/// The interfaces the applied configuration uses, per network namespace, and the routes it had to withdraw because their
/// interface was missing or down. After every apply it logs what was withdrawn and what came back, and writes
/// <c>RUNTIME/interfaces.json</c> for <c>status</c>; <see cref="InterfaceWatcher"/> asks it which kernel events concern the
/// configuration.
/// </summary>
public sealed partial class InterfaceTracking(ILogger logger)
{
    private readonly Lock _gate = new();
    private Dictionary<string, Dictionary<string, WithdrawnInterface>>? _withdrawn; // pipeline → interface → withdrawal
    private Dictionary<string, Watched> _watched = [];

    /// <summary>What one namespace's pipelines use: interface names and the ifindexes they had (an event may carry either).</summary>
    public sealed record Watched(string? Namespace, IReadOnlySet<string> Names, IReadOnlySet<int> Ifindexes, IReadOnlySet<string> Withdrawn);

    /// <summary>Raised after an apply changed the set of namespaces or interfaces in use.</summary>
    public event Action? Changed;

    /// <summary>The namespaces (null: the host's) whose interfaces the configuration uses.</summary>
    public IReadOnlyList<Watched> Namespaces
    {
        get
        {
            lock (_gate)
                return _watched.Values.ToList();
        }
    }

    /// <summary>What the last apply withdrew in <paramref name="pipeline"/>, one line ("up9: interface 'up9' does not exist, 1 route"), or null.</summary>
    public string? Describe(string pipeline)
    {
        lock (_gate)
            return _withdrawn?.GetValueOrDefault(pipeline) is { Count: > 0 } w
                ? string.Join("; ", w.Values.OrderBy(i => i.Interface).Select(i => $"{i.Reason}: {Routes(i.Routes)} withdrawn"))
                : null;
    }

    /// <summary>Whether an event in namespace <paramref name="ns"/> concerns an interface the configuration uses.</summary>
    public bool Concerns(string? ns, LinkEvent e)
    {
        Watched? watched;
        lock (_gate)
            watched = _watched.GetValueOrDefault(ns ?? "");
        return e.Kind == LinkEventKind.Overrun
            || watched is not null && (e.Name is not null && watched.Names.Contains(e.Name) || e.Ifindex > 0 && watched.Ifindexes.Contains(e.Ifindex));
    }

    /// <summary>
    /// Before an apply rewrites the routes to interfaces that are back (withdrawn by the last apply, up in
    /// <paramref name="planned"/>): make their incomplete neighbour entries solicit now (<see cref="Neighbours.Reprobe"/>).
    /// Redirects in the few ms between the interface going down and the apply that withdrew its routes left such an entry for
    /// their next hop; its retransmit timer (1 s) would otherwise hold the restored routes' packets (queued, then dropped)
    /// for up to a second. Best effort: a failure is logged, the apply goes on.
    /// </summary>
    public void Returning(string runtimeDirectory, IReadOnlyList<PlannedPipeline> planned)
    {
        List<(string? Namespace, string Interface, int Ifindex)> back;
        lock (_gate)
        {
            var withdrawn = Withdrawn(runtimeDirectory);
            back = planned.SelectMany(p => (withdrawn.GetValueOrDefault(p.Config.Name) ?? []).Keys
                    .Where(i => p.Interfaces.GetValueOrDefault(i) > 0 && p.Withdrawn.All(w => w.Interface != i))
                    .Select(i => (p.Config.Namespace, i, p.Interfaces[i])))
                .Distinct().ToList();
        }
        foreach (var (ns, name, ifindex) in back)
        {
            try
            {
                int asked = NamespaceScope.Run(ns, () => Neighbours.Reprobe(ifindex));
                if (asked > 0)
                    LogReprobed(name, asked);
            }
            catch (HostException e)
            {
                LogReprobeFailed(name, e.Message);
            }
        }
    }

    private Dictionary<string, Dictionary<string, WithdrawnInterface>> Withdrawn(string runtimeDirectory) =>
        _withdrawn ??= WithdrawnRoutes.Load(runtimeDirectory).ToDictionary(p => p.Key, p => p.Value.ToDictionary(w => w.Interface));

    /// <summary>Take in what an apply used and withdrew: log the changes, save them for <c>status</c>, follow the namespaces.</summary>
    public void Applied(string runtimeDirectory, IReadOnlyList<PlannedPipeline> planned)
    {
        var now = DateTimeOffset.UtcNow;
        bool changed;
        lock (_gate)
        {
            _withdrawn = Withdrawn(runtimeDirectory);
            foreach (var p in planned)
            {
                string name = p.Config.Name;
                var before = _withdrawn.GetValueOrDefault(name) ?? [];
                var after = new Dictionary<string, WithdrawnInterface>();
                foreach (var w in p.Withdrawn)
                {
                    after[w.Interface] = new WithdrawnInterface(w.Interface, w.Reason, w.Routes, before.TryGetValue(w.Interface, out var old) ? old.Since : now);
                    if (old is null || old.Reason != w.Reason)
                        LogWithdrawn(name, w.Interface, w.Reason.Contains("does not exist") ? "gone" : "down", Routes(w.Routes), w.Reason);
                }
                foreach (var (iface, old) in before)
                    if (!after.ContainsKey(iface))
                        LogBack(name, iface, p.Interfaces.GetValueOrDefault(iface), Routes(old.Routes), (now - old.Since).TotalSeconds);
                _withdrawn[name] = after;
            }
            // Pipelines no longer configured keep forwarding with what they had: keep their entries until they are uninstalled.
            WithdrawnRoutes.Save(runtimeDirectory, _withdrawn.Where(p => p.Value.Count > 0)
                .ToDictionary(p => p.Key, p => (IReadOnlyList<WithdrawnInterface>)p.Value.Values.OrderBy(w => w.Interface).ToList()));

            var watched = planned.GroupBy(p => p.Config.Namespace ?? "").ToDictionary(g => g.Key, g => new Watched(
                g.First().Config.Namespace,
                g.SelectMany(p => p.Interfaces.Keys).ToHashSet(),
                g.SelectMany(p => p.Interfaces.Values).Where(i => i > 0).ToHashSet(),
                g.SelectMany(p => p.Withdrawn.Select(w => w.Interface)).ToHashSet()));
            changed = !SameAs(watched);
            _watched = watched;
        }
        if (changed)
            Changed?.Invoke();
    }

    /// <summary>
    /// Whether an interface in use changed since the last apply (looked up again in each namespace): for a watcher that
    /// starts after that apply, so that nothing that happened in between is missed.
    /// </summary>
    public bool Stale()
    {
        foreach (var w in Namespaces)
        {
            bool stale = NamespaceScope.Run(w.Namespace, () => w.Names.Any(name =>
            {
                var now = Net.Interfaces.Lookup(name);
                return now.Condition == InterfaceCondition.Up == w.Withdrawn.Contains(name) || now.Ifindex > 0 && !w.Ifindexes.Contains(now.Ifindex);
            }));
            if (stale)
                return true;
        }
        return false;
    }

    private bool SameAs(Dictionary<string, Watched> other) =>
        other.Count == _watched.Count && other.All(o => _watched.TryGetValue(o.Key, out var w)
            && w.Names.SetEquals(o.Value.Names) && w.Ifindexes.SetEquals(o.Value.Ifindexes));

    private static string Routes(int n) => n == 1 ? "1 route" : $"{n:N0} routes";

    [LoggerMessage(EventId = 310, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: interface {Interface} is {State}: {Routes} withdrawn, the kernel routes their packets until it is back ({Reason})")]
    private partial void LogWithdrawn(string pipeline, string @interface, string state, string routes, string reason);

    [LoggerMessage(EventId = 314, Level = LogLevel.Information, Message = "interface {Interface} is back: {Count} incomplete neighbour entries left from while it was down asked again")]
    private partial void LogReprobed(string @interface, int count);

    [LoggerMessage(EventId = 315, Level = LogLevel.Warning, Message = "ask the neighbours of interface {Interface} again: {Error} (its next hops resolve on the kernel's next retry, within about a second)")]
    private partial void LogReprobeFailed(string @interface, string error);

    [LoggerMessage(EventId = 311, Level = LogLevel.Information, Message = "pipeline {Pipeline}: interface {Interface} is back (ifindex {Ifindex}): {Routes} restored after {Seconds:F1} s")]
    private partial void LogBack(string pipeline, string @interface, int ifindex, string routes, double seconds);
}
