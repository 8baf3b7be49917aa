using System.Text.Json;
using System.Text.Json.Serialization;

namespace PluginHost.Bench.Report;

/// <summary>The report for machines: every figure with its spread and raw samples.</summary>
public static class JsonReport
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DictionaryKeyPolicy = null,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static string Render(BenchReport report) => JsonSerializer.Serialize(new
    {
        schema = "pluginhost-bench/1",
        report.Machine,
        report.Command,
        report.Mode,
        elapsedSeconds = Math.Round(report.Elapsed.TotalSeconds, 1),
        report.Sampling,
        report.PerPacket,
        report.Lookup,
        report.Forwarding,
        report.Reload,
        report.ControlPlane,
        report.Footprint,
        report.Classifier,
        report.LoadBalancer,
    }, Options) + "\n";
}
