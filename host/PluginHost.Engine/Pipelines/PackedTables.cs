using System.Runtime.CompilerServices;
using PluginHost.Compose;
using PluginHost.Contract;

namespace PluginHost.Pipelines;

/// <summary>
/// Encodes a plugin's <see cref="EntryTable"/> into map bytes once per table instance: a plugin that hands back
/// the same table (SourcePolicy does while its routes file is unchanged) does not pay for encoding a million
/// rows again when only a runtime route changed. Keys are held weakly, so a cached table dies with its plugin.
/// </summary>
internal static class PackedTables
{
    private sealed record Encoded(int Rows, string Layout, PackedEntries Entries);

    private static readonly ConditionalWeakTable<EntryTable, Encoded> Cache = new();

    public static PackedEntries Encode(EntryTable table, StageMap map)
    {
        string layout = map.Fingerprint;
        // A table can still grow after it was handed over; the row count tells.
        if (Cache.TryGetValue(table, out var known) && known.Rows == table.Count && known.Layout == layout)
            return known.Entries;
        var keyFields = map.Key.NumberFields(table.KeyFields);
        var valueFields = map.Value.NumberFields(table.ValueFields);
        var packed = new PackedEntries(map.Key.Size, map.Value.Size);
        for (int i = 0; i < table.Count; i++)
            packed.Add(map.Key, keyFields, map.Value, valueFields, table.Row(i));
        Cache.AddOrUpdate(table, new Encoded(table.Count, layout, packed));
        return packed;
    }
}
