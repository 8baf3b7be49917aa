using PluginHost.Compose;
using System.Net;
using Prometheus;
using PluginHost.Observe;
using PluginHost.Config;
using PluginHost.Hosting;

namespace PluginHost.Control;

/// <summary>
/// <c>/metrics</c> for Prometheus (off by default; <c>metrics: { listen: 127.0.0.1:9464 }</c> turns it on).
/// The datapath counters are read from the pinned maps at scrape time, through the same
/// <see cref="StatusReport"/> as <c>pluginhost stats --json</c>, so the two always agree; the <c>counter</c>
/// label is the counter's snake_case name (<see cref="CounterLayout.MetricName{TCounter}"/>), as Prometheus names go.
/// </summary>
public sealed class MetricsExporter : IDisposable
{
    private readonly IMetricServer _server;

    private MetricsExporter(IMetricServer server) => _server = server;

    public static MetricsExporter Start(HostConfig config, HostEngine engine)
    {
        var registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(registry);
        var entry = factory.CreateCounter("pluginhost_entry_total",
            "Entry program counters: packets, bytes, and packets passed to the kernel by reason.", "pipeline", "counter");
        var stage = factory.CreateCounter("pluginhost_stage_total",
            "Stage counters: packets (reached the stage), redirected bytes, matched, redirected, passed, dropped, redirect errors, TTL expired, missed tail calls, generation mismatches.",
            "pipeline", "stage", "plugin", "counter");
        var items = factory.CreateCounter("pluginhost_item_total",
            "Counters of named items (FiveTuplePolicy's named rules, LoadBalancer's backends and services): packets and bytes, and what else the plugin counts (a backend's flows).", "pipeline", "stage", "plugin", "item", "counter");
        var probeUp = factory.CreateGauge("pluginhost_probe_up",
            "Health probes the plugins declare: 1 up, 0 down (no series while a probe is undecided).", "pipeline", "stage", "probe");
        var generation = factory.CreateGauge("pluginhost_generation", "The running generation of each pipeline.", "pipeline");
        var reloads = factory.CreateCounter("pluginhost_reloads_total", "Applies of the configuration (startup, file changes, reload, runtime commands).");
        var failures = factory.CreateCounter("pluginhost_reload_failures_total", "Applies that failed and kept the running datapath.");
        var duration = factory.CreateHistogram("pluginhost_reload_duration_seconds", "Time to apply the configuration.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 14) });

        engine.Applied += (elapsed, error) =>
        {
            reloads.Inc();
            if (error is not null)
                failures.Inc();
            duration.Observe(elapsed.TotalSeconds);
        };
        registry.AddBeforeCollectCallback(() =>
        {
            foreach (var p in StatusReport.Stats(config.RuntimeDirectory))
            {
                generation.WithLabels(p.Pipeline).Set(p.Generation);
                foreach (var (counter, value) in p.Entry.Values)
                    entry.WithLabels(p.Pipeline, CounterLayout.MetricName(counter)).IncTo(value);
                foreach (var s in p.Stages)
                    foreach (var (counter, value) in s.Counters.Values)
                        stage.WithLabels(p.Pipeline, s.Index.ToString(), s.Plugin, CounterLayout.MetricName(counter)).IncTo(value);
            }
            // Probes come and go with the configuration: series of probes no longer declared (or undecided) are removed.
            var probes = engine.Probes.Snapshot().SelectMany(p => p.Value.Select(s => (Labels: new[] { p.Key, s.Stage.ToString(), s.Probe }, s.State))).ToList();
            foreach (var stale in probeUp.GetAllLabelValues().Where(l => !probes.Any(p => p.State != Contract.ProbeState.Unknown && p.Labels.SequenceEqual(l))).ToList())
                probeUp.RemoveLabelled(stale);
            foreach (var (labels, state) in probes.Where(p => p.State != Contract.ProbeState.Unknown))
                probeUp.WithLabels(labels).Set(state == Contract.ProbeState.Up ? 1 : 0);
            foreach (var c in engine.ItemCounts())
            {
                foreach (var (counter, value) in new[] { ("packets", c.Packets), ("bytes", c.Bytes) }.Concat(c.Fields))
                {
                    string[] labels = [c.Pipeline, c.Stage.ToString(), c.Plugin, c.Item, counter];
                    // A counter that restarted (its rule's position changed owner) starts its series again: Prometheus reads the drop as a reset.
                    if (items.WithLabels(labels).Value > value)
                        items.RemoveLabelled(labels);
                    items.WithLabels(labels).IncTo(value);
                }
            }
        });

        var endpoint = IPEndPoint.Parse(config.MetricsListen!);
        var server = new KestrelMetricServer(endpoint.Address.ToString(), endpoint.Port, "/metrics", registry);
        server.Start();
        return new MetricsExporter(server);
    }

    public void Dispose() => _server.Dispose();
}
