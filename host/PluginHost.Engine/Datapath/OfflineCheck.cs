using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>
/// <c>plugin check</c> and <c>validate --compile</c>: each planned pipeline composed, compiled with clang, loaded
/// through the verifier with fresh maps holding its entries, and its canaries run under BPF_PROG_TEST_RUN (see
/// <see cref="ChainRehearsal"/>). Nothing is attached and nothing is pinned: what ran is closed when it returns.
/// Needs what loading needs (root, or CAP_BPF). A compile error or a verifier rejection names the template line
/// (<c>Plugin/template.c.sbn:LINE</c>); a wrong canary names the canary.
/// </summary>
public static class OfflineCheck
{
    // No pin is made under it, but a plan needs a root to describe where pins would go.
    private const string NoBpfRoot = "/nonexistent/pluginhost-offline-check";

    public static IReadOnlyList<PipelineCheck> Run(IReadOnlyList<PlannedPipeline> pipelines, ClangCompiler compiler) =>
        pipelines.Select(p => Run(p, compiler, BpfDatapathKernel.Instance)).ToList();

    internal static PipelineCheck Run(PlannedPipeline planned, IChainCompiler compiler, IDatapathKernel kernel)
    {
        var (loaded, check) = Load(planned, compiler, kernel);
        loaded.Dispose();
        return check;
    }

    /// <summary><see cref="Run(PlannedPipeline, IChainCompiler, IDatapathKernel)"/>, keeping the checked chain loaded (PluginHost.Testing).</summary>
    internal static (ILoadedGeneration Loaded, PipelineCheck Check) Load(PlannedPipeline planned, IChainCompiler compiler, IDatapathKernel kernel)
    {
        var spec = ChainComposer.Compose(planned.Plan);
        var plan = GenerationPlan.Decide(planned, spec, NoBpfRoot, recorded: null, pinExists: _ => false, pinnedGenerations: []);
        var (loaded, report) = ChainRehearsal.Load(kernel, compiler, plan);
        return (loaded, new PipelineCheck(planned.Config.Name, planned.Plan.Stages.Select(s => s.PluginName).ToList(), report.CompileCached,
            report.Programs, report.Canaries.Passed, report.Canaries.Shadowed, report.Compile, report.Load, report.Canary));
    }
}

/// <summary>What <see cref="OfflineCheck"/> ran for one pipeline.</summary>
/// <param name="CompileCached">The object came from the compile cache (the same source was compiled before).</param>
/// <param name="Programs">The verified programs, the entry program first, with their sizes.</param>
/// <param name="Canaries">One line per canary checked, with its verdict ("canary of stage 0 (SourcePolicy) 'route ...': redirect to ifindex 3 — ok").</param>
/// <param name="Shadowed">Plugin canaries an earlier stage decided first.</param>
public sealed record PipelineCheck(string Pipeline, IReadOnlyList<string> Stages, bool CompileCached, IReadOnlyList<ProgramSize> Programs,
    IReadOnlyList<string> Canaries, IReadOnlyList<string> Shadowed, TimeSpan Compile, TimeSpan Load, TimeSpan Canary);
