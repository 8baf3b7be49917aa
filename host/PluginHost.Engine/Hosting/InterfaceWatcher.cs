using Microsoft.Extensions.Logging;
using PluginHost.Net;

namespace PluginHost.Hosting;

/// <summary>
/// Turns rtnetlink link and address events (an interface created, deleted, renamed, set up or down, losing its carrier,
/// gaining or losing an address) into triggers, when they concern an interface the configuration uses: one NETLINK_ROUTE
/// socket per network namespace of the configuration, created inside it, read on a thread of its own. The reconciler
/// coalesces a burst into one apply, in which plugins resolve the interfaces again: a route whose interface went away is
/// withdrawn, and one whose interface came back (with any ifindex) is rewritten in place. Follows the namespaces as the
/// configuration changes; a socket that overflowed (events lost) triggers an apply too.
/// </summary>
public sealed partial class InterfaceWatcher : IDisposable
{
    /// <summary>How long a read waits before it looks at the stop flag.</summary>
    public static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    public const string Source = "interface";

    private readonly InterfaceTracking _tracking;
    private readonly Action<Trigger> _post;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Listener> _listeners = [];
    private bool _disposed;

    public InterfaceWatcher(InterfaceTracking tracking, Action<Trigger> post, ILogger logger)
    {
        _tracking = tracking;
        _post = post;
        _log = logger;
        _tracking.Changed += Follow;
        Follow();
        // Whatever changed between the last apply and now (this watcher was not listening yet).
        if (_tracking.Stale())
            _post(new Trigger(Source, "changed before the watcher started"));
    }

    /// <summary>The namespaces listened to ("" for the host's).</summary>
    public IReadOnlyList<string> Listening
    {
        get
        {
            lock (_gate)
                return _listeners.Keys.ToList();
        }
    }

    private void Follow()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            var wanted = _tracking.Namespaces.ToDictionary(w => w.Namespace ?? "", w => w.Namespace);
            foreach (var key in _listeners.Keys.Where(k => !wanted.ContainsKey(k)).ToList())
            {
                _listeners[key].Dispose();
                _listeners.Remove(key);
            }
            foreach (var (key, ns) in wanted)
            {
                if (_listeners.ContainsKey(key))
                    continue;
                try
                {
                    _listeners[key] = new Listener(this, ns, LinkEventSocket.Open(ns, Poll));
                }
                catch (HostException e)
                {
                    // The namespace may be gone; the next apply (which then fails to resolve its interfaces) says so.
                    LogListenFailed(Describe(ns), e.Message);
                }
            }
        }
    }

    private void Received(string? ns, LinkEvent e)
    {
        if (!_tracking.Concerns(ns, e))
            return;
        // Gone or down: urgent (until the apply withdraws its routes, what a redirect sends there is lost).
        bool urgent = e.Kind == LinkEventKind.LinkRemoved || e.Kind == LinkEventKind.LinkChanged && !e.Up;
        _post(new Trigger(Source, ns is null ? e.ToString() : $"{e} in network namespace {ns}", urgent));
    }

    private static string Describe(string? ns) => ns is null ? "the host's network namespace" : $"network namespace {ns}";

    public void Dispose()
    {
        _tracking.Changed -= Follow;
        List<Listener> listeners;
        lock (_gate)
        {
            _disposed = true;
            listeners = _listeners.Values.ToList();
            _listeners.Clear();
        }
        foreach (var l in listeners)
            l.Dispose();
    }

    // One namespace: a socket and the thread that reads it.
    private sealed class Listener : IDisposable
    {
        private readonly LinkEventSocket _socket;
        private readonly Thread _thread;
        private volatile bool _stop;

        public Listener(InterfaceWatcher owner, string? ns, LinkEventSocket socket)
        {
            _socket = socket;
            _thread = new Thread(() =>
            {
                while (!_stop)
                {
                    try
                    {
                        foreach (var e in _socket.Receive())
                            owner.Received(ns, e);
                    }
                    catch (HostException e)
                    {
                        owner.LogReadFailed(Describe(ns), e.Message);
                        Thread.Sleep(Poll);
                    }
                }
            }) { IsBackground = true, Name = $"interface events {ns ?? "host"}" };
            _thread.Start();
        }

        public void Dispose()
        {
            _stop = true;
            _thread.Join(Poll * 4);
            _socket.Dispose();
        }
    }

    [LoggerMessage(EventId = 312, Level = LogLevel.Warning, Message = "watch interfaces of {Namespace}: {Error}")]
    private partial void LogListenFailed(string @namespace, string error);

    [LoggerMessage(EventId = 313, Level = LogLevel.Warning, Message = "read interface events of {Namespace}: {Error}")]
    private partial void LogReadFailed(string @namespace, string error);
}
