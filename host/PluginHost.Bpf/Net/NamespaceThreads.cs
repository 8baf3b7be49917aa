using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Net;

/// <summary>
/// Threads that stay inside a network namespace and run work there, one item at a time. setns() changes only the
/// calling thread, so work in a namespace needs a thread of its own; starting one and entering cost a few hundred
/// microseconds, which every apply paid several times (the planner, then each plugin call). A thread is used again
/// while <c>/run/netns/NAME</c> is still the namespace it entered; one left behind at a time limit never gets work
/// again; one idle for a minute ends. A null namespace is the process's own (its first thread's).
/// </summary>
public static class NamespaceThreads
{
    private static readonly TimeSpan IdleEnd = TimeSpan.FromMinutes(1);
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, List<Worker>> Idle = [];

    /// <summary>
    /// Run <paramref name="work"/> in namespace <paramref name="name"/> and wait at most <paramref name="timeout"/>.
    /// False when the time ran out: the work goes on on its thread, which is never used again.
    /// </summary>
    public static bool TryRun<T>(string? name, Func<T> work, TimeSpan timeout, out T result)
    {
        var worker = Take(name);
        var item = new Item(() => work());
        worker.Post(item);
        if (!item.Done.Wait(timeout))
        {
            worker.Abandoned = true;
            result = default!;
            return false; // not returned to the pool: it is still busy, maybe for ever
        }
        if (worker.Entered)
            Return(worker);
        item.Failure?.Throw();
        result = (T)item.Result!;
        item.Result = null;
        return true;
    }

    private static Worker Take(string? name)
    {
        string key = name ?? "";
        ulong? now = name is null ? null : FileStamp.Of(Path.Combine("/run/netns", name))?.Inode;
        lock (Gate)
        {
            if (Idle.TryGetValue(key, out var list))
            {
                // A namespace deleted (made again or not) is not the one its threads are in: they end, and a new thread
                // fails to enter a missing one with the error that says how to make it.
                foreach (var stale in list.Where(w => name is not null && w.Inode != now).ToList())
                {
                    list.Remove(stale);
                    stale.Post(null);
                }
                if (list.Count > 0)
                {
                    var worker = list[^1];
                    list.RemoveAt(list.Count - 1);
                    return worker;
                }
            }
        }
        return new Worker(name);
    }

    private static void Return(Worker worker)
    {
        lock (Gate)
        {
            if (!Idle.TryGetValue(worker.Key, out var list))
                Idle[worker.Key] = list = [];
            list.Add(worker);
        }
    }

    // Ends an idle worker: false when it was just taken (it has work coming).
    private static bool Retire(Worker worker)
    {
        lock (Gate)
            return Idle.GetValueOrDefault(worker.Key)?.Remove(worker) ?? false;
    }

    private sealed class Item(Func<object?> work)
    {
        public readonly ManualResetEventSlim Done = new(false, spinCount: 1); // work takes milliseconds: block, do not spin
        public object? Result;
        public ExceptionDispatchInfo? Failure;
        private Func<object?>? _work = work;

        // Nothing of the work is kept once it ran: a plugin's objects must not outlive its call (its code is unloaded).
        public void Run()
        {
            var work = _work!;
            _work = null;
            try
            {
                Result = work();
            }
            catch (Exception e)
            {
                Failure = ExceptionDispatchInfo.Capture(e);
            }
            Done.Set();
        }
    }

    private sealed class Worker
    {
        private readonly string? _name;
        // A monitor, not a SemaphoreSlim: that one spins before it sleeps, and an idle thread spinning takes the core the
        // caller needs (measured: 8% of a rule add's CPU on two cores).
        private readonly object _gate = new();
        private Item? _next;
        private bool _quit;
        private bool _posted;

        public Worker(string? name)
        {
            _name = name;
            new Thread(Loop) { IsBackground = true, Name = name is null ? "host netns worker" : $"netns {name} worker" }.Start();
        }

        public string Key => _name ?? "";

        public ulong? Inode { get; private set; }

        /// <summary>Its caller stopped waiting: once the item ends, so does the thread.</summary>
        public volatile bool Abandoned;

        /// <summary>Whether the thread is in its namespace (false: entering failed, the thread ended).</summary>
        public bool Entered { get; private set; }

        /// <summary>Give the (idle) worker its next item; null ends it.</summary>
        public void Post(Item? item)
        {
            if (item is null)
                _quit = true;
            lock (_gate)
            {
                _next = item;
                _posted = true;
                Monitor.Pulse(_gate);
            }
        }

        // Its own frame: the item is not held while the thread waits for the next one.
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        private void RunNext()
        {
            var item = _next!;
            _next = null;
            item.Run();
        }

        private bool WaitForPost(TimeSpan timeout)
        {
            lock (_gate)
            {
                while (!_posted)
                    if (!Monitor.Wait(_gate, timeout))
                        return false;
                _posted = false;
                return true;
            }
        }

        private void Loop()
        {
            WaitForPost(Timeout.InfiniteTimeSpan);
            try
            {
                NamespaceScope.Enter(_name);
                Inode = FileStamp.Of("/proc/thread-self/ns/net")?.Inode;
                Entered = true;
            }
            catch (Exception e)
            {
                // The first item learns why; this thread is done.
                if (_next is { } first)
                {
                    first.Failure = ExceptionDispatchInfo.Capture(e);
                    first.Done.Set();
                }
                return;
            }
            while (true)
            {
                if (_quit || _next is null)
                    return;
                RunNext();
                // Abandoned (its caller gave up): never used again. Idle: ended after a while, unless just taken.
                while (!Abandoned && !WaitForPost(IdleEnd))
                    if (Retire(this))
                        return;
                if (Abandoned)
                    return;
            }
        }
    }
}
