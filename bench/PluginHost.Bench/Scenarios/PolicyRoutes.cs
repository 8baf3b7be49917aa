using System.Net;
using System.Text;
using PluginHost.Bench.Setup;

namespace PluginHost.Bench.Scenarios;

/// <summary>A source route: packets from <see cref="Prefix"/>/<see cref="Length"/> leave by an interface, to a next hop.</summary>
public sealed record SourceRoute(IPAddress Prefix, int Length, string Interface, IPAddress Via);

/// <summary>
/// The route tables of the per-packet benchmark, shared by the composed chain (as SourcePolicy settings)
/// and the hand-written router (as entries of its four tries), so both do the same lookups. The
/// benchmark packet (from <see cref="Source"/>) misses every stage but the last, which sends it to out1.
/// </summary>
public static class PolicyRoutes
{
    public static readonly IPAddress Source = IPAddress.Parse("198.18.1.10");
    public static readonly IPAddress Destination = IPAddress.Parse("198.18.9.1");

    private static readonly IPAddress ViaOut1 = IPAddress.Parse("198.18.2.2");
    private static readonly IPAddress ViaOut2 = IPAddress.Parse("198.18.3.2");

    /// <summary>Stage <paramref name="index"/>'s routes: three that miss the benchmark packet, plus the hit in the last stage.</summary>
    public static IReadOnlyList<SourceRoute> Stage(int index, bool last)
    {
        var routes = new List<SourceRoute>
        {
            new(IPAddress.Parse($"10.{index}.0.0"), 16, Sandbox.Out2, ViaOut2),
            new(IPAddress.Parse($"10.{index}.1.0"), 24, Sandbox.Out2, ViaOut2),
            new(IPAddress.Parse($"10.{index}.2.128"), 25, Sandbox.Out2, ViaOut2),
        };
        if (last)
            routes.Add(new SourceRoute(IPAddress.Parse("198.18.1.0"), 24, Sandbox.Out1, ViaOut1));
        return routes;
    }

    /// <summary>The routes of an <paramref name="stages"/>-stage chain, stage by stage.</summary>
    public static IReadOnlyList<IReadOnlyList<SourceRoute>> Chain(int stages) =>
        Enumerable.Range(0, stages).Select(i => Stage(i, last: i == stages - 1)).ToList();

    /// <summary>A SourcePolicy stage as YAML (a list item).</summary>
    public static string StageYaml(IReadOnlyList<SourceRoute> routes)
    {
        var yaml = new StringBuilder("- plugin: SourcePolicy\n  settings:\n    routes:\n");
        foreach (var r in routes)
            yaml.Append($"      - from: {r.Prefix}/{r.Length}\n        interface: {r.Interface}\n        via: {r.Via}\n");
        return yaml.ToString();
    }

    /// <summary>A SourcePolicy stage reading a routes file.</summary>
    public static string RoutesFileStageYaml(string path) => $"- plugin: SourcePolicy\n  settings:\n    routesFile: {path}\n";
}
