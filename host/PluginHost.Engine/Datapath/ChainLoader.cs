using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Kernel;

namespace PluginHost.Datapath;

/// <summary>
/// A chain loaded into the kernel: entry program, stage programs joined through a fresh prog
/// array, the stats map and the stages' maps filled with their entries. Not attached yet.
/// </summary>
public sealed class LoadedChain : IDisposable
{
    internal LoadedChain(ChainSpec spec, BpfProgram entry, IReadOnlyList<BpfProgram> stages, BpfMap chain, BpfMap stats,
        IReadOnlyDictionary<string, BpfMap> stageMaps)
    {
        Spec = spec;
        Entry = entry;
        Stages = stages;
        Chain = chain;
        Stats = stats;
        StageMaps = stageMaps;
    }

    public ChainSpec Spec { get; }
    public BpfProgram Entry { get; }
    public IReadOnlyList<BpfProgram> Stages { get; }
    public BpfMap Chain { get; }
    public BpfMap Stats { get; }

    /// <summary>Stage maps by C name (s0_routes).</summary>
    public IReadOnlyDictionary<string, BpfMap> StageMaps { get; }

    public PipelineCounters ReadCounters() => CounterReader.Read(Stats, Spec.Stages.Count);

    /// <summary>Pin everything that must outlive the process into <paramref name="directory"/>.</summary>
    public void Pin(string directory)
    {
        Entry.Pin(Path.Combine(directory, ChainSpec.EntryProgram));
        Chain.Pin(Path.Combine(directory, ChainSpec.ChainMap));
        Stats.Pin(Path.Combine(directory, ChainSpec.StatsMap));
        foreach (var (name, map) in StageMaps)
            map.Pin(Path.Combine(directory, name));
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
public static class ChainLoader
{
    /// <summary>
    /// Load <paramref name="objectPath"/> (compiled from <paramref name="spec"/>), fill the prog array
    /// and write <paramref name="stageEntries"/>. A verifier rejection names the stage and plugin.
    /// </summary>
    public static LoadedChain Load(ChainSpec spec, string objectPath, IReadOnlyList<IReadOnlyList<MapEntry>> stageEntries)
    {
        using var obj = BpfObject.Open(objectPath);
        try
        {
            obj.Load();
        }
        catch (ProgramLoadException e)
        {
            var stage = spec.Stages.FirstOrDefault(s => s.ProgramName == e.Program);
            string who = stage is null ? $"the host's {e.Program} program" : $"stage {stage.Index} (plugin {stage.PluginName})";
            throw new ChainLoadException($"load chain for pipeline {spec.PipelineName}: the verifier rejected {who}; " +
                $"its last lines (\"@ file:line\" points into the template):\n{e.Message[(e.Message.IndexOf('\n') + 1)..]}", e);
        }

        var entry = obj.Program(ChainSpec.EntryProgram);
        var stages = spec.Stages.Select(s => obj.Program(s.ProgramName)).ToList();
        var chain = obj.Map(ChainSpec.ChainMap);
        var stats = obj.Map(ChainSpec.StatsMap);
        var maps = spec.Stages.SelectMany(s => s.Maps).ToDictionary(m => m.CName, m => obj.Map(m.CName));
        var loaded = new LoadedChain(spec, entry, stages, chain, stats, maps);
        try
        {
            for (int i = 0; i < stages.Count; i++)
                chain.SetProgram((uint)i, stages[i]);
            foreach (var stage in spec.Stages)
                foreach (var e in stageEntries[stage.Index])
                {
                    var map = stage.Maps.Single(m => m.Schema.Name == e.Map);
                    maps[map.CName].Update(map.Key.Encode(e.Key), map.Value.Encode(e.Value));
                }
            return loaded;
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
    }
}

/// <summary>Loading a chain failed; the running generation was not touched.</summary>
public sealed class ChainLoadException(string message, Exception inner) : Exception(message, inner);
