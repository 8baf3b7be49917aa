using PluginHost.Lab;
using PluginHost.Net;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Bpf;

/// <summary>Threads kept inside a network namespace: used again while it is the same namespace, never after a time limit.</summary>
public sealed class NamespaceThreadsTests : IDisposable
{
    private readonly string _ns = $"ph-nst-{Environment.ProcessId}-{Random.Shared.Next(100000)}";
    private NetworkNamespace _made;

    public NamespaceThreadsTests() => _made = NetworkNamespace.Create(_ns);

    public void Dispose() => _made.Dispose();

    // "net:[4026532...]": which namespace the calling thread is in.
    private static string Here() => File.ResolveLinkTarget("/proc/thread-self/ns/net", false)!.ToString();

    private (string Namespace, int Thread) InNamespace() =>
        NamespaceScope.Run(_ns, () => (Here(), Environment.CurrentManagedThreadId));

    [KernelFact]
    public void Work_runs_in_the_namespace_on_one_kept_thread_until_the_namespace_is_made_again()
    {
        var first = InNamespace();
        var second = InNamespace();

        Assert.NotEqual(Here(), first.Namespace);
        Assert.Equal(first, second); // same namespace, same thread: no new thread, no second setns
        // Asked again from inside, the work runs inline.
        Assert.Equal(first.Thread, NamespaceScope.Run(_ns, () => NamespaceScope.Run(_ns, () => Environment.CurrentManagedThreadId)));

        _made.Dispose();
        _made = NetworkNamespace.Create(_ns);
        var remade = InNamespace();
        Assert.NotEqual(first.Namespace, remade.Namespace); // the kept thread was in the old one: not used
        Assert.NotEqual(first.Thread, remade.Thread);

        // Deleted and not made again: no kept thread runs work in it; the error says how to make it.
        _made.Dispose();
        var e = Assert.Throws<PluginHost.Interop.BpfException>(() => InNamespace());
        Assert.Contains($"create it with 'ip netns add {_ns}'", e.Message);
        _made = NetworkNamespace.Create(_ns);
    }

    [KernelFact]
    public void A_thread_left_behind_at_its_limit_is_never_used_again()
    {
        using var release = new ManualResetEventSlim();
        int stuck = 0;
        Assert.False(NamespaceThreads.TryRun(_ns, () => { stuck = Environment.CurrentManagedThreadId; return release.Wait(TimeSpan.FromMinutes(1)); },
            TimeSpan.FromMilliseconds(100), out _));

        Assert.True(NamespaceThreads.TryRun(_ns, () => Environment.CurrentManagedThreadId, TimeSpan.FromSeconds(10), out int next));
        release.Set();
        Assert.NotEqual(0, stuck);
        Assert.NotEqual(stuck, next);
        var e = Assert.Throws<FormatException>(() => NamespaceThreads.TryRun<int>(_ns, () => throw new FormatException("bad"), TimeSpan.FromSeconds(10), out _));
        Assert.Equal("bad", e.Message);
    }

    [KernelFact]
    public void A_missing_namespace_is_an_error_that_says_how_to_make_it()
    {
        var e = Assert.Throws<PluginHost.Interop.BpfException>(() => NamespaceScope.Run("ph-nst-missing", () => 0));
        Assert.Contains("no /run/netns/ph-nst-missing: create it with 'ip netns add ph-nst-missing'", e.Message);
    }
}
