using System.Reflection;
using Xunit;

namespace PluginHost.Tests.Engine;

[Trait("Category", "Unit")]
public sealed class HostExceptionTests
{
    // Every host assembly: the CLI's Guard prints exactly the HostException family as one line.
    private static readonly Assembly[] HostAssemblies =
    [
        typeof(HostException).Assembly,                        // PluginHost.Bpf
        typeof(PluginHost.Hosting.HostEngine).Assembly,        // PluginHost.Engine
        typeof(PluginHost.Control.ControlServer).Assembly,     // PluginHost.ControlPlane
        typeof(PluginHost.Lab.RouterLab).Assembly,             // PluginHost.Lab
    ];

    [Fact]
    public void EveryExceptionTheHostDeclaresIsAHostException()
    {
        var declared = HostAssemblies.SelectMany(a => a.GetTypes()).Where(t => typeof(Exception).IsAssignableFrom(t)).ToList();
        Assert.Contains(typeof(PluginHost.Datapath.ReloadRefusedException), declared);
        Assert.Contains(typeof(PluginHost.Config.ConfigException), declared);
        Assert.Empty(declared.Where(t => !typeof(HostException).IsAssignableFrom(t)).Select(t => t.FullName));
    }
}
