namespace PluginHost.Plugins.LoadBalancer.Maglev;

/// <summary>One backend of a Maglev table.</summary>
/// <param name="Key">
/// A stable identity (for example "up1 198.18.2.2"): it alone seeds the backend's preference order over the
/// table, so the backend prefers the same entries whatever its position in the list and whoever else is in it.
/// </param>
/// <param name="Weight">1 to <see cref="MaglevTable.MaxWeight"/>, its share relative to the others'; 0 = drained (no entries).</param>
internal readonly record struct MaglevBackend(string Key, int Weight);
