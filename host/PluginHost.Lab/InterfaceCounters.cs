using System.Text.Json;

namespace PluginHost.Lab;

/// <summary>Packet counters of one interface, read through <c>ip -j -s link</c>.</summary>
internal static class InterfaceCounters
{
    /// <summary>The interface's received and transmitted packet counts (stats64).</summary>
    public static (long RxPackets, long TxPackets) Read(NetworkNamespace ns, string ifname)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentException.ThrowIfNullOrWhiteSpace(ifname);
        string json = Ip.Run("-n", ns.Name, "-j", "-s", "link", "show", "dev", ifname);
        try
        {
            using var doc = JsonDocument.Parse(json);
            JsonElement root = doc.RootElement;
            JsonElement link = root.ValueKind == JsonValueKind.Array ? root[0] : root;
            JsonElement stats = link.GetProperty("stats64");
            return (stats.GetProperty("rx").GetProperty("packets").GetInt64(),
                    stats.GetProperty("tx").GetProperty("packets").GetInt64());
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException
                                      or IndexOutOfRangeException or FormatException)
        {
            throw new LabException($"read counters of {ifname} in netns {ns.Name}: {e.Message}", e);
        }
    }
}
