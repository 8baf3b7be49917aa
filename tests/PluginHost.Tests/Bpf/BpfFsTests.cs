using PluginHost.Kernel;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Bpf;

/// <summary>Whether a path is on a mounted bpffs, as the kernel says (statfs), for paths that exist and that do not yet.</summary>
public sealed class BpfFsTests
{
    [KernelFact]
    public void Only_paths_on_a_mounted_bpffs_are_usable()
    {
        Assert.True(BpfFs.IsOnBpfFs("/sys/fs/bpf"));
        Assert.True(BpfFs.IsOnBpfFs($"/sys/fs/bpf/not-made-yet-{Guid.NewGuid():N}/pipeline")); // judged by its nearest parent
        Assert.False(BpfFs.IsOnBpfFs(Path.GetTempPath()));
        Assert.False(BpfFs.IsOnBpfFs("/sys/fs"));
        var e = Assert.Throws<PluginHost.Interop.BpfException>(() => BpfFs.EnsureUsable(Path.Combine(Path.GetTempPath(), "ph-not-bpf")));
        Assert.Contains("not on a mounted bpffs (mount -t bpf bpf /sys/fs/bpf)", e.Message);
    }
}
