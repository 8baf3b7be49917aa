using PluginHost.Kernel;
using PluginHost.Lab;

namespace PluginHost.Bench.Setup;

/// <summary>
/// Everything a run creates, all named after the harness's process id so nothing collides with a
/// host or the tests: a network namespace <c>phb&lt;pid&gt;</c> with three up interfaces (veth pairs
/// whose peers stay inside), a BPF root <c>/sys/fs/bpf/pluginhost-bench-&lt;pid&gt;</c> and a work
/// directory <c>/tmp/pluginhost-bench-&lt;pid&gt;</c> (compile cache, routes files, reload config).
/// Dispose removes all of it, once (Ctrl-C included; a concurrent second call waits for the first);
/// leftovers of a run that was killed outright are removed by the next run.
/// </summary>
public sealed class Sandbox : IDisposable
{
    public const string Input = "in0";
    public const string Out1 = "out1";
    public const string Out2 = "out2";

    private const string NamespacePrefix = "phb";
    private const string NamePrefix = "pluginhost-bench-";
    private const string BpfFsRoot = "/sys/fs/bpf";

    private readonly object _lock = new();
    private readonly object _disposeLock = new();
    private readonly List<(string What, Action Undo)> _undo = [];
    private readonly Dictionary<string, int> _ifindexes = [];
    private bool _disposed;

    private Sandbox(int id)
    {
        WorkDirectory = Path.Combine(Path.GetTempPath(), NamePrefix + id);
        BpfRoot = Path.Combine(BpfFsRoot, NamePrefix + id);
        Namespace = null!;
    }

    public NetworkNamespace Namespace { get; private set; }

    /// <summary>Private BPF root for anything the runs pin (the reload benchmark's host).</summary>
    public string BpfRoot { get; }

    public string WorkDirectory { get; }

    /// <summary>Compile cache of the chains built for the per-packet and lookup benchmarks.</summary>
    public string CacheDirectory => Path.Combine(WorkDirectory, "cache");

    /// <summary>Create the sandbox; <paramref name="log"/> hears about stale leftovers removed.</summary>
    public static Sandbox Create(Action<string> log)
    {
        if (!Environment.IsPrivilegedProcess)
            throw new BenchException("create sandbox: needs root (network namespaces, BPF)");
        BpfFs.EnsureUsable(BpfFsRoot);
        RemoveStale(log);

        var sandbox = new Sandbox(Environment.ProcessId);
        try
        {
            Directory.CreateDirectory(sandbox.WorkDirectory);
            sandbox.Namespace = InterfaceNamespace.Create(NamespacePrefix + Environment.ProcessId, Input, Out1, Out2);
            return sandbox;
        }
        catch (Exception e)
        {
            sandbox.Dispose();
            throw new BenchException($"create sandbox: {e.Message}", e);
        }
    }

    /// <summary>The ifindex of an interface inside the sandbox's namespace.</summary>
    public int Ifindex(string name)
    {
        lock (_ifindexes)
        {
            if (!_ifindexes.TryGetValue(name, out int index))
                _ifindexes[name] = index = int.Parse(Namespace.Exec("cat", $"/sys/class/net/{name}/ifindex").Trim());
            return index;
        }
    }

    /// <summary>
    /// Something to undo before the sandbox goes, a host to uninstall say: disposing the result undoes it
    /// now; otherwise the sandbox does, in reverse order of registration. Either way it runs once.
    /// </summary>
    public IDisposable OnTeardown(string what, Action undo)
    {
        var entry = (what, undo);
        lock (_lock)
            _undo.Add(entry);
        return new Registration(this, entry);
    }

    /// <summary>Remove everything; a second caller (a second Ctrl-C, process exit) waits until the first is done.</summary>
    public void Dispose()
    {
        lock (_disposeLock)
        {
            if (_disposed)
                return;
            _disposed = true;
            List<(string What, Action Undo)> undo;
            lock (_lock)
            {
                undo = [.. _undo];
                _undo.Clear();
            }
            for (int i = undo.Count - 1; i >= 0; i--)
            {
                try
                {
                    undo[i].Undo();
                }
                catch (Exception e)
                {
                    Console.Error.WriteLine($"bench: {undo[i].What}: {e.Message}");
                }
            }
            // Pins first (a pinned tcx link holds the hook), then the namespace with its interfaces.
            Try("remove " + BpfRoot, () => BpfFs.RemoveTree(BpfRoot));
            Namespace?.Dispose();
            Try("remove " + WorkDirectory, () =>
            {
                if (Directory.Exists(WorkDirectory))
                    Directory.Delete(WorkDirectory, recursive: true);
            });
        }
    }

    private static void Try(string what, Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"bench: {what}: {e.Message}");
        }
    }

    // A run killed with SIGKILL (or a crashed VM session) cannot clean up: its pid no longer exists.
    private static void RemoveStale(Action<string> log)
    {
        static bool Dead(string name, string prefix) =>
            name.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(name[prefix.Length..], out int pid)
            && pid != Environment.ProcessId && !Running(pid);

        foreach (var dir in Directory.GetDirectories(BpfFsRoot).Where(d => Dead(Path.GetFileName(d), NamePrefix)))
        {
            log($"removing stale {dir}");
            Try("remove " + dir, () => BpfFs.RemoveTree(dir));
        }
        if (Directory.Exists("/run/netns"))
            foreach (var ns in Directory.GetFiles("/run/netns").Select(Path.GetFileName).Where(n => Dead(n!, NamespacePrefix)))
            {
                log($"removing stale network namespace {ns}");
                try { Ip.Run("netns", "del", ns!); }
                catch (LabException e) { Console.Error.WriteLine($"bench: remove netns {ns}: {e.Message}"); }
            }
        foreach (var dir in Directory.GetDirectories(Path.GetTempPath()).Where(d => Dead(Path.GetFileName(d), NamePrefix)))
        {
            log($"removing stale {dir}");
            Try("remove " + dir, () => Directory.Delete(dir, recursive: true));
        }
    }

    // A killed process may linger as a zombie until its parent reaps it: that counts as gone.
    private static bool Running(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] is not ('Z' or 'X');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private sealed class Registration(Sandbox sandbox, (string What, Action Undo) entry) : IDisposable
    {
        public void Dispose()
        {
            bool mine;
            lock (sandbox._lock)
                mine = sandbox._undo.Remove(entry);
            if (mine)
                entry.Undo();
        }
    }
}
