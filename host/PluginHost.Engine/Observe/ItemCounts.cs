using System.Buffers.Binary;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Datapath;

namespace PluginHost.Observe;

/// <summary>One named item's counters (a rule's packets and bytes), as <c>rule list --stats</c> and <c>/metrics</c> show them.</summary>
/// <param name="Fields">The further counters the plugin names (<see cref="ItemCounter.Fields"/>), in its order.</param>
public sealed record ItemCount(string Pipeline, int Stage, string Plugin, string Item, ulong Packets, ulong Bytes)
{
    public IReadOnlyList<(string Name, ulong Value)> Fields { get; init; } = [];
}

/// <summary>Where a planned stage's plugin counts one named item (<see cref="ItemCounter"/>), with the map's layout.</summary>
internal sealed record ItemCounterSite(string Pipeline, int Stage, string Plugin, ItemCounter Counter, MapSchema Map)
{
    /// <summary>The sites of every stage of planned pipelines.</summary>
    public static List<ItemCounterSite> Of(IEnumerable<Pipelines.PlannedPipeline> planned) =>
        planned.SelectMany(p => p.Plan.Stages.SelectMany((stage, i) => stage.ItemCounters.Select(c =>
            new ItemCounterSite(p.Config.Name, i, stage.PluginName, c, stage.Maps.Single(m => m.Name == c.Map))))).ToList();
}

/// <summary>Reads items' counters from the pinned State maps of the running generation (one lookup an item).</summary>
internal static class ItemCounts
{
    public static List<ItemCount> Read(string runtimeDirectory, IReadOnlyList<ItemCounterSite> sites, IDatapathKernel kernel)
    {
        var counts = new List<ItemCount>();
        foreach (var group in sites.GroupBy(s => (s.Pipeline, s.Stage, s.Counter.Map)))
        {
            var first = group.First();
            var state = PipelineState.Load(runtimeDirectory, first.Pipeline);
            string cName = $"s{first.Stage}_{first.Counter.Map}";
            if (state?.Maps.FirstOrDefault(m => m.CName == cName) is not { } pinned || !kernel.Exists(pinned.Pin))
                continue; // not deployed (yet): nothing counted
            var layout = StructLayout.Compute("value", first.Map.Value);
            int Offset(string field) => layout.Fields.Single(f => f.Field.Name == field).Offset;
            int packets = Offset("packets"), bytes = Offset("bytes");
            int? tag = first.Map.Value.Any(f => f.Name == "tag") ? Offset("tag") : null;
            var value = new byte[layout.Size];
            using var map = kernel.OpenMap(pinned.Pin);
            foreach (var site in group)
            {
                var c = site.Counter;
                bool found = map.TryLookup(BitConverter.GetBytes(c.Index), value);
                bool owned = found && (c.Tag == 0 || tag is not { } at || BinaryPrimitives.ReadUInt32LittleEndian(value.AsSpan(at)) == c.Tag);
                ulong Read(int at) => owned ? BinaryPrimitives.ReadUInt64LittleEndian(value.AsSpan(at)) : 0;
                counts.Add(new ItemCount(site.Pipeline, site.Stage, site.Plugin, c.Item, Read(packets), Read(bytes))
                {
                    Fields = c.Fields.Select(f => (f, Read(Offset(f)))).ToList(),
                });
            }
        }
        return counts;
    }
}
