using System.Diagnostics;

namespace PluginHost.Datapath;

/// <summary>
/// A chain compiled, loaded through the verifier with fresh maps that hold what its plan says, its canaries run, then
/// thrown away: nothing attached, nothing pinned, no live map touched. The deployer rehearses an in-place change whose
/// canaries changed; <c>plugin check</c> and <c>validate --compile</c> rehearse whole pipelines.
/// </summary>
internal static class ChainRehearsal
{
    public static RehearsalReport Run(IDatapathKernel kernel, IChainCompiler compiler, GenerationPlan plan)
    {
        var (copy, report) = Load(kernel, compiler, plan);
        using (copy)
            return report;
    }

    /// <summary><see cref="Run"/>, keeping what it loaded open for the caller (PluginHost.Testing runs more frames through it).</summary>
    public static (ILoadedGeneration Loaded, RehearsalReport Report) Load(IDatapathKernel kernel, IChainCompiler compiler, GenerationPlan plan)
    {
        var watch = Stopwatch.StartNew();
        var compiled = compiler.Compile(plan.Spec.Source, plan.Name);
        var compile = watch.Elapsed;
        watch.Restart();
        var copy = kernel.Load(plan.Spec, compiled.ObjectPath, plan.Generation, new Dictionary<string, string>());
        try
        {
            foreach (var decision in plan.Maps.Where(d => d.Desired is { Count: > 0 }))
                using (var map = copy.Map(decision.Map.CName))
                    map.UpdateMany(decision.Desired!);
            var programs = copy.Programs();
            var load = watch.Elapsed;
            watch.Restart();
            var canaries = RunCanaries(plan, copy);
            return (copy, new RehearsalReport(compiled.Cached, programs, canaries, compile, load, watch.Elapsed));
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }

    /// <summary>The plan's canaries through <paramref name="loaded"/>; a wrong one throws, naming the pipeline.</summary>
    public static CanaryReport RunCanaries(GenerationPlan plan, ILoadedGeneration loaded)
    {
        try
        {
            return loaded.RunCanaries(plan.Planned.Plan.Stages);
        }
        catch (CanaryException e)
        {
            throw new CanaryException($"canary pipeline {plan.Name}: {e.Message}");
        }
    }
}

/// <summary>What a rehearsal showed: the object (from the compile cache or not), the verified programs, the canaries.</summary>
internal sealed record RehearsalReport(bool CompileCached, IReadOnlyList<ProgramSize> Programs, CanaryReport Canaries,
    TimeSpan Compile, TimeSpan Load, TimeSpan Canary);
