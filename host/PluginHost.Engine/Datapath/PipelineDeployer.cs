using System.Diagnostics;
using Microsoft.Extensions.Logging;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Kernel;
using PluginHost.Net;
using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>Timings and ids of one deployment.</summary>
public sealed record DeployResult(string Pipeline, uint Generation, uint LinkId, uint ProgramId, bool Attached,
    bool CompileCached, TimeSpan Compose, TimeSpan Compile, TimeSpan Load, TimeSpan Swap);

/// <summary>
/// Builds a generation of a pipeline and puts it on the hook. Layout under the BPF root:
/// <c>&lt;pipeline&gt;/link</c> (the tcx link, created once and then swapped with one update) and
/// <c>&lt;pipeline&gt;/g&lt;N&gt;/</c> (entry program, prog array, stats and stage maps of generation N).
/// Anything that fails before the swap leaves the running generation as it was.
/// </summary>
public sealed partial class PipelineDeployer(string bpfRoot, string runtimeDirectory, ClangCompiler compiler, ILogger logger)
{
    public const string LinkPin = "link";

    public string PipelineDirectory(string pipeline) => Path.Combine(bpfRoot, pipeline);

    /// <summary>The next generation number for a pipeline: one more than any pinned.</summary>
    public uint NextGeneration(string pipeline)
    {
        string dir = PipelineDirectory(pipeline);
        if (!Directory.Exists(dir))
            return 1;
        uint max = Directory.GetDirectories(dir, "g*")
            .Select(d => uint.TryParse(Path.GetFileName(d)[1..], out uint n) ? n : 0)
            .DefaultIfEmpty(0u).Max();
        return max + 1;
    }

    public DeployResult Deploy(PlannedPipeline planned)
    {
        BpfFs.EnsureUsable(bpfRoot);
        var config = planned.Config;
        var watch = Stopwatch.StartNew();
        var spec = ChainComposer.Compose(planned.Plan);
        var composeTime = watch.Elapsed;

        watch.Restart();
        var compiled = compiler.Compile(spec.Source, config.Name);
        var compileTime = watch.Elapsed;

        watch.Restart();
        using var chain = ChainLoader.Load(spec, compiled.ObjectPath, planned.StageEntries);
        string pipelineDir = PipelineDirectory(config.Name);
        string genDir = Path.Combine(pipelineDir, $"g{planned.Plan.Generation}");
        BpfFs.RemoveTree(genDir); // a leftover of a failed attempt with the same number
        chain.Pin(genDir);
        var loadTime = watch.Elapsed;

        watch.Restart();
        string linkPath = Path.Combine(pipelineDir, LinkPin);
        bool attached = false;
        TcxLink link;
        try
        {
            link = SwapOrAttach(linkPath, chain.Entry, planned, ref attached);
        }
        catch
        {
            BpfFs.RemoveTree(genDir);
            throw;
        }
        var swapTime = watch.Elapsed;
        using (link)
        {
            var info = link.Info;
            new PipelineState(config.Name, config.Interface, config.Namespace, config.Direction.ToString().ToLowerInvariant(),
                planned.Ifindex, planned.Plan.Generation, pipelineDir, genDir, DateTimeOffset.UtcNow,
                spec.Stages.Select(s => new StageState(s.Index, s.PluginName, s.ProgramName, s.Maps.Select(m => m.CName).ToList())).ToList())
                .Save(runtimeDirectory);
            RetireOlderGenerations(pipelineDir, genDir);
            LogDeployed(config.Name, planned.Plan.Generation, info.LinkId, info.ProgramId, attached ? "attached" : "swapped");
            return new DeployResult(config.Name, planned.Plan.Generation, info.LinkId, info.ProgramId, attached,
                compiled.Cached, composeTime, compileTime, loadTime, swapTime);
        }
    }

    private TcxLink SwapOrAttach(string linkPath, BpfProgram entry, PlannedPipeline planned, ref bool attached)
    {
        var config = planned.Config;
        if (File.Exists(linkPath))
        {
            var existing = TcxLink.OpenPinned(linkPath);
            var info = existing.Info;
            uint wantType = (uint)(config.Direction == Direction.Ingress ? Interop.Libbpf.BPF_TCX_INGRESS : Interop.Libbpf.BPF_TCX_EGRESS);
            if (info.Ifindex == planned.Ifindex && info.AttachType == wantType)
            {
                existing.Update(entry);
                return existing;
            }
            // The hook moved (config changed interface or direction) or the interface is gone:
            // attach the new link first, then let the old one go.
            LogReplacingLink(config.Name, info.Ifindex, info.AttachType);
            existing.Dispose();
            var fresh = NamespaceScope.Run(config.Namespace, () => TcxLink.Attach(entry, planned.Ifindex, config.Direction));
            File.Delete(linkPath);
            fresh.Pin(linkPath);
            attached = true;
            return fresh;
        }
        var link = NamespaceScope.Run(config.Namespace, () => TcxLink.Attach(entry, planned.Ifindex, config.Direction));
        link.Pin(linkPath);
        attached = true;
        return link;
    }

    private static void RetireOlderGenerations(string pipelineDir, string current)
    {
        foreach (var dir in Directory.GetDirectories(pipelineDir, "g*"))
            if (dir != current)
                BpfFs.RemoveTree(dir);
    }

    /// <summary>Detach a pipeline and remove its pins and state.</summary>
    public void Remove(string pipeline)
    {
        BpfFs.RemoveTree(PipelineDirectory(pipeline));
        File.Delete(PipelineState.FilePath(runtimeDirectory, pipeline));
        LogRemoved(pipeline);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "pipeline {Pipeline}: generation {Generation} {Action} (link {LinkId}, program {ProgramId})")]
    private partial void LogDeployed(string pipeline, uint generation, uint linkId, uint programId, string action);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "pipeline {Pipeline}: pinned link points at ifindex {Ifindex} type {AttachType}; attaching a new link")]
    private partial void LogReplacingLink(string pipeline, uint ifindex, uint attachType);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "pipeline {Pipeline}: detached and unpinned")]
    private partial void LogRemoved(string pipeline);
}
