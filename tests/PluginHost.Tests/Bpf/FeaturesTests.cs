using PluginHost.Kernel;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Bpf;

public sealed class FeaturesTests
{
    [KernelFact]
    public void TcxIsFoundOnThisKernelByOneProbe()
    {
        // The machine runs Linux 6.18: a probe saying "no tcx" here is a broken probe, not an old kernel.
        Assert.True(Features.HaveTcx, "the tcx probe finds tcx links on this kernel");
        Assert.True(Features.HaveTcx);
        Features.RequireTcx();
        Assert.Equal(1, Features.TcxProbeRuns);
    }
}
