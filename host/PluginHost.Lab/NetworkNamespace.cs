using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using PluginHost.Interop;
using PluginHost.Net;

namespace PluginHost.Lab;

/// <summary>
/// A named network namespace (one under <c>/run/netns</c>, as <c>ip netns</c> manages them).
/// Code runs inside it on a dedicated thread: <c>setns</c> switches only the calling thread,
/// so a pooled or caller thread is never moved.
/// </summary>
public sealed class NetworkNamespace : IDisposable
{
    private const string NetnsDir = "/run/netns";
    private readonly bool _owned;
    private int _disposed;

    private NetworkNamespace(string name, bool owned)
    {
        Name = name;
        _owned = owned;
    }

    /// <summary>The name, as <c>ip netns list</c> shows it.</summary>
    public string Name { get; }

    /// <summary>The bind-mounted namespace file.</summary>
    public string Path => $"{NetnsDir}/{Name}";

    /// <summary>True when this object created the namespace and deletes it on Dispose.</summary>
    public bool IsOwned => _owned;

    /// <summary>Creates the namespace, deleting a stale one of the same name first. Dispose deletes it.</summary>
    public static NetworkNamespace Create(string name)
    {
        Validate(name);
        if (Exists(name))
            Ip.Run("netns", "del", name);
        Ip.Run("netns", "add", name);
        return new NetworkNamespace(name, owned: true);
    }

    /// <summary>Refers to an existing namespace without owning it: Dispose leaves it in place.</summary>
    public static NetworkNamespace Attach(string name)
    {
        Validate(name);
        if (!Exists(name))
            throw new LabException($"attach netns {name}: no such namespace");
        return new NetworkNamespace(name, owned: false);
    }

    /// <summary>True when <c>/run/netns/&lt;name&gt;</c> exists.</summary>
    public static bool Exists(string name)
    {
        Validate(name);
        return File.Exists($"{NetnsDir}/{name}");
    }

    /// <summary>Runs <paramref name="action"/> on a new thread that has joined this namespace; waits for it.</summary>
    public T Run<T>(Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return NamespaceScope.Run(Name, action);
    }

    /// <summary>Runs <paramref name="action"/> on a new thread that has joined this namespace; waits for it.</summary>
    public void Run(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Run<bool>(() =>
        {
            action();
            return true;
        });
    }

    /// <summary>Runs <c>ip netns exec &lt;name&gt; cmd...</c> and returns its output; throws like <see cref="Ip.Run"/>.</summary>
    public string Exec(params string[] cmd)
    {
        ArgumentNullException.ThrowIfNull(cmd);
        if (cmd.Length == 0)
            throw new ArgumentException("exec needs a command", nameof(cmd));
        return Ip.Run(["netns", "exec", Name, .. cmd]);
    }

    /// <summary>
    /// Sets a sysctl inside this namespace. <paramref name="key"/> is dotted
    /// (<c>net.ipv4.ip_forward</c>) or, when a component itself holds a dot, slash-separated
    /// (<c>net/ipv4/conf/eth0.100/rp_filter</c>). Written through <c>/proc/sys</c> from a thread
    /// in the namespace: the kernel resolves <c>/proc/sys/net</c> against the calling thread's netns.
    /// </summary>
    public void Sysctl(string key, string value)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        ArgumentNullException.ThrowIfNull(value);
        string path = SysctlPath(key);
        Run(() =>
        {
            try
            {
                File.WriteAllText(path, value);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new LabException($"set sysctl {key}={value} in netns {Name}: {e.Message}", e);
            }
        });
    }

    /// <summary>Reads a sysctl inside this namespace (same key syntax as <see cref="Sysctl"/>).</summary>
    public string ReadSysctl(string key)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        string path = SysctlPath(key);
        return Run(() => File.ReadAllText(path).Trim());
    }

    /// <summary>Deletes an owned namespace (its interfaces go with it). Never throws.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || !_owned)
            return;
        try
        {
            Ip.Run("netns", "del", Name);
        }
        catch (Exception)
        {
            // Best effort: a namespace someone else already deleted is fine.
        }
    }

    public override string ToString() => Name;


    private static string SysctlPath(string key)
    {
        string relative = key.Contains('/') ? key.TrimStart('/') : key.Replace('.', '/');
        if (relative.Split('/').Any(part => part is "" or "." or ".."))
            throw new ArgumentException($"bad sysctl key '{key}'", nameof(key));
        return "/proc/sys/" + relative;
    }

    private static void Validate(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Contains('/') || name is "." or ".." || name.Length > 64 || name.Any(char.IsWhiteSpace))
            throw new ArgumentException($"bad netns name '{name}'", nameof(name));
    }
}
