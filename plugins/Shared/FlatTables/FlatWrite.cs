namespace PluginHost.Plugins.Shared.FlatTables;

/// <summary>
/// One entry write of a flat table, as the datapath would see it: <paramref name="Level"/> 1 is the first-level array
/// (index = the address's top 24 bits), 2 the second-level array (index = group × 256 + the address's low 8 bits).
/// Applied one at a time and in the order given, a lookup running beside them only ever sees the old or the new answer.
/// </summary>
internal readonly record struct FlatWrite(int Level, uint Index, uint Value);

/// <summary>
/// A table needs more second-level groups than its limit allows. Nothing was changed.
/// </summary>
internal sealed class FlatTableFullException(string message, int needed, int limit) : InvalidOperationException(message)
{
    /// <summary>Groups the table would need.</summary>
    public int Needed { get; } = needed;

    /// <summary>The configured maximum.</summary>
    public int Limit { get; } = limit;
}
