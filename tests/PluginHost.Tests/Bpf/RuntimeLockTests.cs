using PluginHost.Net;
using Xunit;

namespace PluginHost.Tests.Bpf;

/// <summary>The runtime directory's lock: flock conflicts between open files, so one process can play both hosts.</summary>
[Trait("Category", "Unit")]
public sealed class RuntimeLockTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-lock-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ASecondHolderIsRefusedWithTheFirstsPidUntilTheFirstReleases()
    {
        string runtime = Path.Combine(_dir, "run"); // created by the lock
        using (var first = RuntimeLock.TryAcquire(runtime, out int? holder))
        {
            Assert.NotNull(first);
            Assert.Equal(Environment.ProcessId, holder);
            Assert.Equal(Environment.ProcessId, RuntimeLock.ReadPid(runtime));

            Assert.Null(RuntimeLock.TryAcquire(runtime, out int? other));
            Assert.Equal(Environment.ProcessId, other);
        }
        // Released and emptied (no stale pid), but kept: removing a lock file would let two hosts lock two files.
        Assert.True(File.Exists(RuntimeLock.PathIn(runtime)));
        Assert.Null(RuntimeLock.ReadPid(runtime));
        using var again = RuntimeLock.TryAcquire(runtime, out _);
        Assert.NotNull(again);
    }

    [Fact]
    public void AFileLeftWithAPidBlocksNobody()
    {
        File.WriteAllText(RuntimeLock.PathIn(_dir), "999999\n"); // a host that died without releasing: the kernel released for it
        using var taken = RuntimeLock.TryAcquire(_dir, out int? holder);
        Assert.NotNull(taken);
        Assert.Equal(Environment.ProcessId, holder);
        Assert.Equal(Environment.ProcessId, RuntimeLock.ReadPid(_dir));
    }
}
