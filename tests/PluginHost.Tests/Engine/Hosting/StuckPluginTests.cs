using System.Diagnostics;
using PluginHost.Datapath;
using PluginHost.Plugins;
using PluginHost.Runtime;
using PluginHost.Tests.Support;
using PluginHost.TestSupport;
using Xunit;

namespace PluginHost.Tests.Engine.Hosting;

/// <summary>
/// A plugin stuck in its settings code cannot stall the single writer: the call is abandoned at the configured limit,
/// and its stage keeps its last good plan, so a runtime command on another stage still goes through.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class StuckPluginTests : IDisposable
{
    private readonly KernelChain _net = new();
    private readonly ReloadRig _rig = new();
    private readonly string _marker;

    public StuckPluginTests()
    {
        _rig.UsePlugin(Repo.MarkPolicy(1));
        _marker = Path.Combine(_rig.Work, "hang");
        WriteConfig("198.18.1.0/24");
    }

    public void Dispose()
    {
        File.Delete(_marker); // lets the abandoned call end
        _rig.Dispose();
        _net.Dispose();
    }

    private void WriteConfig(string route, string extra = "")
    {
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, $"""
                  - plugin: MarkPolicy
                    settings: {"{"} hangWhile: {_marker}{extra} {"}"}
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {route}
                          interface: {KernelChain.Out1}
            """);
        File.AppendAllText(_rig.ConfigPath, "pluginCallTimeout: 1\n");
    }

    [KernelFact]
    public void AStuckPluginIsAbandonedInTimeAndARouteAddOnAnotherStageStillApplies()
    {
        var engine = _rig.Engine();
        engine.Apply();
        File.WriteAllText(_marker, "hang from now on");

        var watch = Stopwatch.StartNew();
        var added = engine.RunCommand(new CommandRequest("route", "add", new Dictionary<string, string> { ["from"] = "198.18.7.0/24", ["interface"] = KernelChain.Out1 }));
        var elapsed = watch.Elapsed;

        Assert.Equal(ApplyKind.MapsUpdated, added.Applied);
        Assert.Contains(added.Items, i => i["from"] == "198.18.7.0/24");
        Assert.InRange(elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5)); // the limit, not forever
    }

    [KernelFact]
    public void AStuckPluginOnChangedSettingsIsAnErrorWithinTheLimit()
    {
        var engine = _rig.Engine();
        var first = engine.Apply().Single();
        File.WriteAllText(_marker, "hang from now on");
        WriteConfig("198.18.1.0/24", extra: ", canaryBug: false");
        engine.Reconfigure(PluginHost.Config.ConfigLoader.Load(_rig.ConfigPath));

        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<PluginHost.Config.ConfigException>(() => engine.Apply());

        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
        Assert.Contains("call plugin MarkPolicy Configure: no answer within 1 s; abandoned", e.Message);
        Assert.Equal(first.ProgramId, _rig.AttachedProgramId());
    }
}
