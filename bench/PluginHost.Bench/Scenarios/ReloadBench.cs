using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Report;
using PluginHost.Bench.Setup;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// Part 4 of issue 5 (timings only): a real <see cref="HostEngine"/> with a private BPF root, runtime
/// directory and compile cache runs a MarkPolicy + SourcePolicy pipeline on the sandbox's input
/// interface (attached with tcx), then applies three kinds of change, measuring each apply:
/// a code change with an empty compile cache (MarkPolicy v1 ↔ v2, which differ in code), the same with
/// both versions cached, and a route change that needs no new code (applied to the maps in place).
/// </summary>
public sealed class ReloadBench(Sandbox sandbox, Repo repo, Sampling sampling, Action<string> log)
{
    private const string Pipeline = "bench";

    private readonly string _work = Path.Combine(sandbox.WorkDirectory, "reload");
    private string Plugins => Path.Combine(_work, "plugins");
    private string ConfigPath => Path.Combine(_work, "host.yaml");
    private string Cache => Path.Combine(_work, "cache");

    public ReloadResult Run(CancellationToken cancel)
    {
        Directory.CreateDirectory(Plugins);
        UsePlugin(repo.SourcePolicyPlugin);
        int version = 1;
        UsePlugin(repo.MarkPolicyPlugin(version));
        string routeInterface = Sandbox.Out1;
        WriteConfig(routeInterface);

        var engine = new HostEngine(ConfigLoader.Load(ConfigPath), NullLoggerFactory.Instance);
        using var uninstall = sandbox.OnTeardown("uninstall the reload benchmark's host", engine.Uninstall);
        log("reload: attaching MarkPolicy + SourcePolicy with a tcx link");
        var (attachMs, _) = Apply(engine, ApplyKind.Attached, "attach");

        void CodeChange()
        {
            version = 3 - version;
            UsePlugin(repo.MarkPolicyPlugin(version));
        }

        var rows = new List<ReloadRow>();
        log($"reload: {sampling.ReloadRuns} code changes with an empty compile cache");
        rows.Add(Measure("code-cold", "code change, compile cache empty (MarkPolicy v1 ↔ v2)", ApplyKind.Swapped, cached: false, () =>
        {
            ClearCache();
            CodeChange();
        }, engine, 250, cancel));

        CodeChange(); // both versions in the cache from here on
        Apply(engine, ApplyKind.Swapped, "warm up the compile cache");
        log($"reload: {sampling.ReloadRuns} code changes with the compile cache warm");
        rows.Add(Measure("code-warm", "code change, compile cache warm (MarkPolicy v1 ↔ v2)", ApplyKind.Swapped, cached: true, CodeChange,
            engine, 25, cancel));

        log($"reload: {sampling.ReloadRuns} route changes (no new code)");
        rows.Add(Measure("config-only", "route change, same code (maps updated in place)", ApplyKind.MapsUpdated, cached: null, () =>
        {
            routeInterface = routeInterface == Sandbox.Out1 ? Sandbox.Out2 : Sandbox.Out1;
            WriteConfig(routeInterface);
            engine.Reconfigure(ConfigLoader.Load(ConfigPath));
        }, engine, 5, cancel));

        return new ReloadResult(rows, attachMs, "MarkPolicy + SourcePolicy (1 route) on a veth, ingress");
    }

    private ReloadRow Measure(string id, string label, ApplyKind expected, bool? cached, Action change, HostEngine engine,
        double targetMs, CancellationToken cancel)
    {
        var results = new List<(double ApplyMs, ApplyResult Result)>();
        for (int i = 0; i < sampling.ReloadRuns; i++)
        {
            cancel.ThrowIfCancellationRequested();
            change();
            var (ms, result) = Apply(engine, expected, label);
            if (cached is bool c && result.CompileCached != c)
                throw new BenchException($"measure {label}: the compile cache was {(result.CompileCached ? "hit" : "missed")}, expected the opposite");
            results.Add((ms, result));
        }
        Summary Of(Func<ApplyResult, TimeSpan> phase) => Summary.Of(results.Select(r => phase(r.Result).TotalMilliseconds).ToList());
        return new ReloadRow(id, label, expected.ToString(), results.Count, Summary.Of(results.Select(r => r.ApplyMs).ToList()),
            Of(r => r.Total), Summary.Of(results.Select(r => r.ApplyMs - r.Result.Total.TotalMilliseconds).ToList()), Of(r => r.Compose), Of(r => r.Compile), Of(r => r.Load), Of(r => r.Canary), Of(r => r.Swap), targetMs);
    }

    private static (double Ms, ApplyResult Result) Apply(HostEngine engine, ApplyKind expected, string what)
    {
        var watch = Stopwatch.StartNew();
        ApplyResult result;
        try
        {
            result = engine.Apply().Single();
        }
        catch (Exception e)
        {
            throw new BenchException($"apply {what}: {e.Message}", e);
        }
        double ms = watch.Elapsed.TotalMilliseconds;
        if (result.Kind != expected)
            throw new BenchException($"apply {what}: expected {expected}, the host did {result.Kind}");
        return (ms, result);
    }

    private void ClearCache()
    {
        if (Directory.Exists(Cache))
            Directory.Delete(Cache, recursive: true);
    }

    private void UsePlugin(string source) => PluginFolder.Replace(source, Plugins, _work);

    private void WriteConfig(string routeInterface)
    {
        string yaml = $"""
            pluginsDirectory: {Plugins}
            bpfRoot: {sandbox.BpfRoot}
            runtimeDirectory: {Path.Combine(_work, "run")}
            cacheDirectory: {Cache}
            pipelines:
              - name: {Pipeline}
                namespace: {sandbox.Namespace.Name}
                interface: {Sandbox.Input}
                direction: ingress
                stages:
                  - plugin: MarkPolicy
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: {routeInterface}
                          via: 198.18.2.2
            """;
        File.WriteAllText(ConfigPath + ".tmp", yaml);
        File.Move(ConfigPath + ".tmp", ConfigPath, overwrite: true);
    }
}
