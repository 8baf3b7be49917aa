using PluginHost.TestSupport;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>
/// A configuration applies as a whole or not at all: two pipelines on real tcx hooks, the first gaining a stage,
/// the second given a generation that cannot go live. Neither link moves and nothing new stays pinned.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class MultiPipelineApplyTests : IDisposable
{
    private readonly KernelChain _net = new();
    private readonly ReloadRig _rig = new();

    public MultiPipelineApplyTests()
    {
        _rig.UsePlugin(Repo.MarkPolicy(1));
        WriteConfig(firstGainsStage: false, secondSettings: "");
    }

    public void Dispose()
    {
        _rig.Dispose();
        _net.Dispose();
    }

    // p on in0 (SourcePolicy; MarkPolicy in front of it once it gains a stage), q on out1 (MarkPolicy).
    private void WriteConfig(bool firstGainsStage, string secondSettings)
    {
        string ns = _net.Namespace.Name;
        string sourcePolicy = $"""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: {KernelChain.Out2}
            """;
        _rig.WritePipelines(
            HostYaml.Pipeline("p", ns, KernelChain.Input, (firstGainsStage ? "      - plugin: MarkPolicy\n" : "") + sourcePolicy),
            HostYaml.Pipeline("q", ns, KernelChain.Out1, "      - plugin: MarkPolicy\n" + secondSettings));
    }

    private Exception ApplyRefused(HostEngine engine, string secondSettings)
    {
        WriteConfig(firstGainsStage: true, secondSettings);
        engine.Reconfigure(ConfigLoader.Load(_rig.ConfigPath));
        return Assert.ThrowsAny<Exception>(() => engine.Apply());
    }

    [KernelFact]
    public void SecondPipelineFailingItsCanarySwapsNeitherPipeline()
    {
        var engine = _rig.Engine();
        var first = engine.Apply();
        var pinsBefore = _rig.Pins();

        // A second MarkPolicy stage (new code, so a new generation whose canaries run) with a canary that cannot pass.
        var e = ApplyRefused(engine, "      - plugin: MarkPolicy\n        settings: { canaryBug: true }");

        var canary = Assert.IsType<CanaryException>(e);
        Assert.Contains("pipeline q", canary.Message);
        Assert.Contains("stage 1 (MarkPolicy)", canary.Message);
        Assert.Contains("expects a drop", canary.Message);
        Assert.Equal(first[0].ProgramId, _rig.AttachedProgramId("p"));
        Assert.Equal(first[1].ProgramId, _rig.AttachedProgramId("q"));
        Assert.Equal(pinsBefore, _rig.Pins());
        Assert.Equal(1u, _rig.State.Generation);
        Assert.Contains("pipeline q", ReloadHistory.Load(_rig.RuntimeDirectory).LastFailure);
    }

    [KernelFact]
    public void SecondPipelineRefusedByTheVerifierSwapsNeitherPipeline()
    {
        var engine = _rig.Engine();
        var first = engine.Apply();
        var pinsBefore = _rig.Pins();

        var e = ApplyRefused(engine, "        settings: { verifierBug: true }");

        var load = Assert.IsType<ChainLoadException>(e);
        Assert.Contains("pipeline q", load.Message);
        Assert.Contains("stage 0 (plugin MarkPolicy)", load.Message);
        Assert.Equal(first[0].ProgramId, _rig.AttachedProgramId("p"));
        Assert.Equal(first[1].ProgramId, _rig.AttachedProgramId("q"));
        Assert.Equal(pinsBefore, _rig.Pins());
    }

    [KernelFact]
    public void BothPipelinesSwapWhenBothPrepare()
    {
        var engine = _rig.Engine();
        var first = engine.Apply();

        WriteConfig(firstGainsStage: true, secondSettings: "");
        engine.Reconfigure(ConfigLoader.Load(_rig.ConfigPath));
        var second = engine.Apply();

        Assert.Equal(new[] { ApplyKind.Swapped, ApplyKind.Unchanged }, second.Select(r => r.Kind));
        Assert.NotEqual(first[0].ProgramId, _rig.AttachedProgramId("p"));
        Assert.Equal(second[0].ProgramId, _rig.AttachedProgramId("p"));
        Assert.Equal(first[1].ProgramId, _rig.AttachedProgramId("q"));
    }
}
