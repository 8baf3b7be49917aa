using PluginHost.Observe;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Kernel;
using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>
/// A chain loaded into the kernel: entry program, stage programs joined through a fresh prog
/// array, a fresh stats map and the stages' maps (new or reused). Not attached yet.
/// </summary>
public sealed class LoadedChain : IDisposable
{
    internal LoadedChain(ChainSpec spec, uint generation, BpfProgram entry, IReadOnlyList<BpfProgram> stages, BpfMap chain, BpfMap stats,
        IReadOnlyDictionary<string, BpfMap> stageMaps, IReadOnlySet<string> reused)
    {
        Spec = spec;
        Generation = generation;
        Entry = entry;
        Stages = stages;
        Chain = chain;
        Stats = stats;
        StageMaps = stageMaps;
        Reused = reused;
    }

    public ChainSpec Spec { get; }
    public uint Generation { get; }
    public BpfProgram Entry { get; }

    /// <summary>The stages' own programs, in the prog array (every stage but the first, which runs in <see cref="Entry"/>).</summary>
    public IReadOnlyList<BpfProgram> Stages { get; }
    public BpfMap Chain { get; }
    public BpfMap Stats { get; }

    /// <summary>Stage maps by C name (s0_routes).</summary>
    public IReadOnlyDictionary<string, BpfMap> StageMaps { get; }

    /// <summary>C names of the maps taken over from the running generation.</summary>
    public IReadOnlySet<string> Reused { get; }

    public PipelineCounters ReadCounters() =>
        CounterReader.Read(Stats, Spec.PipelineName, Generation, Spec.Stages.Select(s => (s.PluginName, s.InstanceName)).ToList());

    /// <summary>Write entries into the stage maps (all of them: for fresh maps), in batches.</summary>
    public void WriteEntries(IReadOnlyList<IReadOnlyDictionary<string, PackedEntries>> stageEntries, Func<StageMap, bool>? which = null)
    {
        foreach (var stage in Spec.Stages)
            foreach (var map in stage.Maps.Where(m => which is null || which(m)))
                if (stageEntries[stage.Index].TryGetValue(map.Schema.Name, out var packed) && packed.Count > 0)
                    StageMaps[map.CName].UpdateMany(packed.Keys, packed.Values, packed.Count);
    }

    public void Dispose()
    {
        Entry.Dispose();
        foreach (var p in Stages)
            p.Dispose();
        Chain.Dispose();
        Stats.Dispose();
        foreach (var m in StageMaps.Values)
            m.Dispose();
    }
}

/// <summary>Turns a compiled chain into kernel objects.</summary>
internal static partial class ChainLoader
{
    public const string GenerationSection = ".rodata.ph";

    /// <summary>Load with fresh maps and write every entry (tests, first deploys).</summary>
    public static LoadedChain Load(ChainSpec spec, string objectPath, IReadOnlyList<IReadOnlyDictionary<string, PackedEntries>> stageEntries, uint generation = 1)
    {
        var chain = Load(spec, objectPath, generation, new Dictionary<string, BpfMap>());
        try
        {
            chain.WriteEntries(stageEntries);
            return chain;
        }
        catch
        {
            chain.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Load <paramref name="objectPath"/> (compiled from <paramref name="spec"/>) as <paramref name="generation"/>,
    /// taking over the maps in <paramref name="reuse"/> (by C name) and filling the new prog array.
    /// A verifier rejection names the stage and plugin.
    /// </summary>
    public static LoadedChain Load(ChainSpec spec, string objectPath, uint generation, IReadOnlyDictionary<string, BpfMap> reuse)
    {
        using var obj = BpfObject.Open(objectPath);
        obj.SetReadOnlyData(GenerationSection, BitConverter.GetBytes(generation));
        foreach (var (name, map) in reuse)
            obj.ReuseMap(name, map);
        try
        {
            obj.Load();
        }
        catch (ProgramLoadException e)
        {
            var stage = spec.Stages.FirstOrDefault(s => s.ProgramName == e.Program);
            string who = stage is null ? $"the host's {e.Program} program"
                : stage.HasOwnProgram ? $"stage {stage.Index} (plugin {stage.PluginName})"
                : $"the entry program, which parses and runs stage {stage.Index} (plugin {stage.PluginName})";
            throw new ChainLoadException($"load chain for pipeline {spec.PipelineName}: the verifier rejected {who}; " +
                $"its last lines (\"@ file:line\" points into the template):\n{WithTemplatePaths(e.Message[(e.Message.IndexOf('\n') + 1)..], spec.Source)}", e);
        }

        var entry = obj.Program(ChainSpec.EntryProgram);
        var stages = spec.Stages.Where(s => s.HasOwnProgram).Select(s => (s.Index, Program: obj.Program(s.ProgramName))).ToList();
        var chain = obj.Map(ChainSpec.ChainMap);
        var stats = obj.Map(ChainSpec.StatsMap);
        var maps = spec.Stages.SelectMany(s => s.Maps).ToDictionary(m => m.CName, m => obj.Map(m.CName));
        var loaded = new LoadedChain(spec, generation, entry, stages.Select(s => s.Program).ToList(), chain, stats, maps, reuse.Keys.ToHashSet());
        try
        {
            foreach (var (slot, program) in stages)
                chain.SetProgram((uint)slot, program);
            return loaded;
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
    }
}

internal static partial class ChainLoader
{
    /// <summary>
    /// The verifier prints a source file's base name ("@ mark_policy.c.sbn:6"); the renderer's <c>#line</c> labels name the
    /// plugin too (<c>MarkPolicy/mark_policy.c.sbn</c>). Put the label back wherever the base name is one label's.
    /// </summary>
    internal static string WithTemplatePaths(string log, string source)
    {
        var labels = LineLabel().Matches(source).Select(m => m.Groups[1].Value).Where(l => l.Contains('/')).Distinct()
            .GroupBy(l => l[(l.LastIndexOf('/') + 1)..]).Where(g => g.Count() == 1).ToDictionary(g => g.Key, g => g.Single());
        return labels.Count == 0 ? log : AtFile().Replace(log, m => labels.TryGetValue(m.Groups[1].Value, out var label) ? $"@ {label}:" : m.Value);
    }

    [System.Text.RegularExpressions.GeneratedRegex("^#line \\d+ \"([^\"]+)\"", System.Text.RegularExpressions.RegexOptions.Multiline)]
    private static partial System.Text.RegularExpressions.Regex LineLabel();

    [System.Text.RegularExpressions.GeneratedRegex("@ ([^\\s:/]+):")]
    private static partial System.Text.RegularExpressions.Regex AtFile();
}

/// <summary>Loading a chain failed; the running generation was not touched.</summary>
internal sealed class ChainLoadException(string message, Exception inner) : HostException(message, inner);
