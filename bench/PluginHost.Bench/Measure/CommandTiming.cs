using System.Diagnostics;
using PluginHost.Bench.Report;
using PluginHost.Hosting;
using PluginHost.Runtime;

namespace PluginHost.Bench.Measure;

/// <summary>Runtime commands through <see cref="HostEngine.RunCommand"/>, as the API and the CLI run them, timed as the caller sees them.</summary>
public static class CommandTiming
{
    /// <summary>A command's answer and its wall time.</summary>
    public sealed record Timed(CommandResult Result, double Ms);

    public static Timed Run(HostEngine engine, CommandRequest request)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            var result = engine.RunCommand(request);
            return new Timed(result, watch.Elapsed.TotalMilliseconds);
        }
        catch (Exception e)
        {
            throw new BenchException($"{request.Noun} {request.Verb}: {e.Message}", e);
        }
    }

    /// <summary>Wall time (median, p99 the nearest rank), the host's own figure, entries changed and how each was applied.</summary>
    public static ClassifierUpdateRow Row(string id, string label, List<Timed> runs, double? goal)
    {
        var wall = Summary.Of(runs.Select(r => r.Ms).ToList());
        var applied = string.Join(", ", runs.GroupBy(r => r.Result.Applied?.ToString() ?? "nothing").Select(g => $"{g.Key} ×{g.Count()}"));
        return new ClassifierUpdateRow(id, label, runs.Count, wall, wall.NearestRank(99), Summary.Of(runs.Select(r => r.Result.Milliseconds).ToList()),
            Summary.Of(runs.Select(r => (double)r.Result.EntriesChanged).ToList()).Median, applied, goal);
    }
}
