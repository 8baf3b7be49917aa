using Xunit;

namespace PluginHost.Tests.Support;

/// <summary>
/// A test that needs the real kernel (root, bpffs, clang). Outside CI it is skipped, with the reason,
/// on a machine that cannot run it; under CI=true it always runs, so a missing capability fails it.
/// </summary>
public sealed class KernelFactAttribute : FactAttribute
{
    public KernelFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("CI") == "true")
            return;
        if (Environment.UserName != "root")
            Skip = "needs root (CAP_BPF, CAP_NET_ADMIN); runs in CI";
        else if (!File.Exists("/usr/bin/clang-19"))
            Skip = "needs clang-19 (apt-get install clang-19); runs in CI";
    }
}

/// <summary>A <see cref="KernelFactAttribute"/> with data: the same rules for skipping (never under CI=true).</summary>
public sealed class KernelTheoryAttribute : TheoryAttribute
{
    public KernelTheoryAttribute() => Skip = new KernelFactAttribute().Skip;
}
