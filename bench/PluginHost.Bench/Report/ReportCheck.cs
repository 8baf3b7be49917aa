using PluginHost.Bench.Measure;

namespace PluginHost.Bench.Report;

/// <summary>
/// What a complete report has: every section that was asked for, every row of it, and no figure that is
/// missing or not a number. CI runs <c>bench/run --quick</c> to prove exactly this (figures are not judged).
/// </summary>
public static class ReportCheck
{
    public static IReadOnlyList<string> Missing(BenchReport r, BenchOptions options)
    {
        var missing = new List<string>();
        void Need(string section, object? result)
        {
            if (options.Runs(section) && result is null)
                missing.Add($"section {section} has no results");
        }
        void Figure(string where, double value)
        {
            if (!double.IsFinite(value) || value <= 0)
                missing.Add($"{where} is {value}");
        }
        void Median(string where, Summary s) => Figure(where, s.Median);

        Need(BenchOptions.PerPacket, r.PerPacket);
        Need(BenchOptions.Lookup, r.Lookup);
        Need(BenchOptions.Forwarding, r.Forwarding);
        Need(BenchOptions.Reload, r.Reload);
        Need(BenchOptions.ControlPlane, r.ControlPlane);
        Need(BenchOptions.Footprint, r.Footprint);

        if (r.PerPacket is { } p)
        {
            foreach (var row in p.Rows)
                foreach (var shape in p.Shapes)
                    if (row.Ns.TryGetValue(shape, out var ns))
                        Median($"per-packet {row.Id} {shape}", ns);
                    else
                        missing.Add($"per-packet {row.Id} has no {shape} figure");
            if (!p.Derived.Any(d => d.Id == "chain4-over-handwritten"))
                missing.Add("per-packet has no chain-4 / hand-written ratio");
        }
        if (r.Lookup is { } l)
        {
            foreach (string family in new[] { "IPv4", "IPv6" })
            {
                var sizes = l.Rows.Where(row => row.Family == family).Select(row => row.Prefixes).ToList();
                foreach (int size in r.Sampling.TableSizes.Except(sizes))
                    missing.Add($"lookup has no {family} row for {size:N0} prefixes");
            }
            foreach (var row in l.Rows)
            {
                Median($"lookup {row.Prefixes} repeated", row.Repeated);
                Median($"lookup {row.Prefixes} random", row.Random);
            }
        }
        if (r.Forwarding is { } f)
        {
            foreach (string id in new[] { "kernel", "rule-1", "rule-100", "chain-1", "chain-4" })
                if (f.Rows.FirstOrDefault(row => row.Id == id) is { } row)
                    Median($"forwarding {id}", row.ReceivedMpps);
                else
                    missing.Add($"forwarding has no {id} row");
        }
        if (r.Reload is { } rl)
        {
            foreach (string id in new[] { "code-cold", "code-warm", "config-only" })
                if (rl.Rows.FirstOrDefault(row => row.Id == id) is { } row)
                    Median($"reload {id}", row.ApplyMs);
                else
                    missing.Add($"reload has no {id} row");
            if (rl.Loss is not { } loss)
                missing.Add("reload has no swap-loss row");
            else if (loss.Sent == 0 || loss.Received == 0)
                missing.Add($"reload swap loss: the stream sent {loss.Sent} and received {loss.Received}");
            else if (loss.Flood is not { Sent: > 0, Received: > 0 })
                missing.Add("reload has no swap-loss row under a flood");
        }
        if (r.ControlPlane is { } c)
        {
            Median("control plane single add", c.Single.AddMs);
            if (c.Load is null)
                missing.Add("control plane has no route load row");
            if (c.AfterLoad is null)
                missing.Add("control plane has no single-update row with the table loaded");
        }
        if (r.Footprint is { } fp)
            Figure("footprint RSS", fp.RssMiB);
        if (options.Runs(BenchOptions.LoadBalancer) && r.LoadBalancer is null)
            missing.Add($"section {BenchOptions.LoadBalancer} has no results");
        if (r.LoadBalancer is { } lb)
        {
            foreach (string id in new[] { "established", "new", "reference" })
                if (lb.PerPacket.FirstOrDefault(row => row.Id == id) is not { } row)
                    missing.Add($"loadbalancer has no {id} per-packet row");
                else
                {
                    Median($"loadbalancer {id} IPv4", row.Ipv4);
                    Median($"loadbalancer {id} IPv6", row.Ipv6);
                }
            if (lb.Builds.Count == 0)
                missing.Add("loadbalancer has no Maglev build row");
            foreach (var row in lb.Builds)
                Median($"loadbalancer {row.Id}", row.Ms);
            foreach (string id in new[] { "weight", "drain" })
                if (lb.Changes.FirstOrDefault(row => row.Id == id) is { } row)
                    Median($"loadbalancer {id} change", row.Ms);
                else
                    missing.Add($"loadbalancer has no backend {id} row");
        }
        if (options.Runs(BenchOptions.Classifier) && r.Classifier is null)
            missing.Add($"section {BenchOptions.Classifier} has no results");
        if (r.Classifier is { } cls)
        {
            if (cls.Missing is not null)
                missing.Add($"classifier: {cls.Missing}");
            foreach (string id in cls.Missing is null ? ["10", "1k", "10k", "100k"] : Array.Empty<string>())
                if (cls.Sets.FirstOrDefault(row => row.Id == id) is not { } row)
                    missing.Add($"classifier has no {id}-rule row");
                else
                {
                    Median($"classifier {id} ns per packet", row.Ns);
                    Median($"classifier {id} plan", row.PlanMs);
                    // A wrong verdict is a classifier bug, not a figure: the run fails (CI runs --quick).
                    if (row.Mismatches > 0)
                        missing.Add($"classifier {id}: {row.Mismatches:N0} frames got another verdict than their first matching rule's");
                    // The summary has one decimal: 10 rules' tables read 0.0 MiB.
                    if (row.TablesMiB is not double tables)
                        missing.Add($"classifier {id}: no memory figure in the plugin's summary ('{row.StageSummary}')");
                    else if (id != "10")
                        Figure($"classifier {id} tables", tables);
                }
            if (cls.Missing is null)
            {
                if (cls.Ratios.Count < 2)
                    missing.Add("classifier has no per-packet ratios");
                if (cls.Updates is not { Rows.Count: 4 } updates)
                    missing.Add("classifier has no rule add/del rows");
                else
                    foreach (var row in updates.Rows)
                        Median($"classifier {row.Id}", row.Ms);
                if (cls.Forwarding is not { } cf)
                    missing.Add("classifier has no forwarding rows");
                else
                    foreach (string id in new[] { "ftp-10k", "ftp-10", "nft-10k", "kernel" })
                        if (cf.Rows.FirstOrDefault(row => row.Id == id) is { } row)
                            Median($"classifier forwarding {id}", row.ReceivedMpps);
                        else
                            missing.Add($"classifier forwarding has no {id} row");
            }
        }
        return missing;
    }
}
