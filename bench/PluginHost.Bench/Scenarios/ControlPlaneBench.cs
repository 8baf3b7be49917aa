using System.Diagnostics;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Report;
using PluginHost.Datapath;
using PluginHost.Lab;
using PluginHost.Runtime;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 5 of issue 5, through the running host's API (POST /v1/commands on its control socket, one
/// connection per command as the CLI does): single route add/del latency, then (full mode) a
/// <c>route load</c> of a 1,000,000-prefix routes file (the lookup section's generator and seed) and a few
/// add/del pairs with that table in place. Commands go to the first SourcePolicy stage of <see cref="HostRig"/>.
/// </summary>
public sealed class ControlPlaneBench(HostRig host, bool quick, Action<string> log)
{
    public const int LoadPrefixes = 1_000_000;
    public const double LoadTargetSeconds = 3.0;

    // --quick loads a tenth of the table: the row is there, the target (for a million) is not judged.
    private int Prefixes => quick ? LoadPrefixes / 10 : LoadPrefixes;

    public ControlPlaneResult Run(CancellationToken cancel)
    {
        int pairs = quick ? 20 : 100;
        // The first commands pay for connecting, JIT and loading code on both sides: not measured.
        host.Command("route", "list");
        Pair(0, out _, out _);
        log($"control plane: {pairs} route add/del pairs through the API");
        var (add, del, hostAdd, hostDel) = Pairs(pairs, 1, cancel);

        string file = Path.Combine(host.Work, $"routes-{Prefixes}.txt"); // inside the host configuration's directory: route load is confined there
        log($"control plane: generating {Prefixes:N0} prefixes");
        RouteTable.Generate(Prefixes, seed: Prefixes).WriteRoutesFile(file, RouterLab.RouterUplink1, RouterLab.Uplink1Gateway);
        cancel.ThrowIfCancellationRequested();
        log($"control plane: route load of {Prefixes:N0} prefixes");
        var watch = Stopwatch.StartNew();
        var result = host.Command("route", "load", ("file", file));
        double seconds = watch.Elapsed.TotalSeconds;
        var load = new LoadRow(Prefixes, seconds, result.Milliseconds, result.Applied?.ToString() ?? "none", result.EntriesChanged,
            quick ? null : LoadTargetSeconds);
        int after = quick ? 5 : 20;
        log($"control plane: {after} add/del pairs with {Prefixes:N0} prefixes loaded");
        var (a, d, ha, hd) = Pairs(after, 100_000, cancel);
        var afterLoad = Latency(after, a, d, ha, hd);
        return new ControlPlaneResult(host.Description, Latency(pairs, add, del, hostAdd, hostDel), load, afterLoad);
    }

    private static ControlPlaneLatency Latency(int pairs, List<double> add, List<double> del, List<double> hostAdd, List<double> hostDel) =>
        new(pairs, Summary.Of(add), Summary.Of(add).NearestRank(99), Summary.Of(del), Summary.Of(del).NearestRank(99), Summary.Of(hostAdd), Summary.Of(hostDel));

    private (List<double> Add, List<double> Del, List<double> HostAdd, List<double> HostDel) Pairs(int n, int first, CancellationToken cancel)
    {
        List<double> add = [], del = [], hostAdd = [], hostDel = [];
        for (int i = first; i < first + n; i++)
        {
            cancel.ThrowIfCancellationRequested();
            Pair(i, out var a, out var d);
            add.Add(a.ClientMs);
            del.Add(d.ClientMs);
            hostAdd.Add(a.HostMs);
            hostDel.Add(d.HostMs);
        }
        return (add, del, hostAdd, hostDel);
    }

    // A /32 in 10.250.0.0/16 (outside every configured route), added then removed.
    private void Pair(int i, out (double ClientMs, double HostMs) add, out (double ClientMs, double HostMs) del)
    {
        string from = $"10.250.{(i >> 8) & 255}.{i & 255}/32";
        var watch = Stopwatch.StartNew();
        var added = host.Command("route", "add", ("from", from), ("interface", RouterLab.RouterUplink2), ("via", RouterLab.Uplink2Gateway.ToString()));
        add = (watch.Elapsed.TotalMilliseconds, added.Milliseconds);
        Check("route add " + from, added);
        watch.Restart();
        var deleted = host.Command("route", "del", ("from", from));
        del = (watch.Elapsed.TotalMilliseconds, deleted.Milliseconds);
        Check("route del " + from, deleted);
    }

    private static void Check(string what, CommandResult result)
    {
        if (result.Applied != ApplyKind.MapsUpdated || result.EntriesChanged != 1)
            throw new BenchException($"{what}: expected 1 entry updated in place, the host did {result.Applied?.ToString() ?? "nothing"} " +
                $"({result.EntriesChanged} entries): {result.Message}");
    }
}
