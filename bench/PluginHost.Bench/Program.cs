using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using PluginHost.Bench;
using PluginHost.Bench.Measure;
using PluginHost.Bench.Report;
using PluginHost.Bench.Scenarios;
using PluginHost.Bench.Setup;

// The benchmark harness of issue 5. Progress goes to stderr; the report (Markdown, or JSON with --json) to stdout.
var options = BenchOptions.Parse(args, out string? error);
if (options is null)
{
    if (error is null)
    {
        Console.Out.WriteLine(BenchOptions.Usage);
        return 0;
    }
    Console.Error.WriteLine($"bench: {error}");
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}

// Figures print the same everywhere (1,234.5), whatever the locale.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var watch = Stopwatch.StartNew();
void Log(string message) => Console.Error.WriteLine($"[{watch.Elapsed:mm\\:ss}] {message}");

using var cancel = new CancellationTokenSource();
Sandbox? sandbox = null;
int signals = 0;
// First Ctrl-C (or SIGTERM): stop at the next test run and clean up on the way out. Second: clean up now and exit.
void OnSignal(PosixSignalContext context)
{
    context.Cancel = true;
    if (Interlocked.Increment(ref signals) == 1)
    {
        Console.Error.WriteLine("bench: interrupted: stopping and cleaning up (again to force)");
        cancel.Cancel();
        return;
    }
    sandbox?.Dispose();
    Environment.Exit(130);
}
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
AppDomain.CurrentDomain.ProcessExit += (_, _) => sandbox?.Dispose();

try
{
    var sampling = options.Quick ? Sampling.Quick : Sampling.Full;
    var repo = Repo.Locate();
    var machine = Machine.Describe();
    sandbox = Sandbox.Create(Log);
    Log($"sandbox: network namespace {sandbox.Namespace.Name}, {sandbox.BpfRoot}, {sandbox.WorkDirectory}");

    PerPacketResult? perPacket = null;
    LookupResult? lookup = null;
    ReloadResult? reload = null;
    if (options.Runs(BenchOptions.PerPacket))
        perPacket = new PerPacketBench(sandbox, repo, sampling, Log).Run(cancel.Token);
    if (options.Runs(BenchOptions.Lookup))
        lookup = new LookupBench(sandbox, repo, sampling, Log).Run(cancel.Token);
    ForwardingResult? forwarding = null;
    if (options.Runs(BenchOptions.Forwarding))
        forwarding = new ForwardingBench(sandbox, repo, options.Quick, Log).Run(cancel.Token);
    if (options.Runs(BenchOptions.Reload))
        reload = new ReloadBench(sandbox, repo, sampling, Log).Run(cancel.Token) with
        {
            Loss = new SwapLossBench(sandbox, repo, options.Quick, Log).Run(cancel.Token),
        };
    ControlPlaneResult? controlPlane = null;
    FootprintResult? footprint = null;
    if (options.Runs(BenchOptions.Footprint) || options.Runs(BenchOptions.ControlPlane))
    {
        // One real host for both: idle footprint first, before the control plane fills its tables.
        using var host = HostRig.Start(sandbox, repo, Log);
        if (options.Runs(BenchOptions.Footprint))
            footprint = new FootprintBench(host, options.Quick, Log).Run(cancel.Token);
        if (options.Runs(BenchOptions.ControlPlane))
            controlPlane = new ControlPlaneBench(host, options.Quick, Log).Run(cancel.Token);
    }

    ClassifierResult? classifier = null;
    if (options.Runs(BenchOptions.Classifier))
    {
        var started = watch.Elapsed;
        classifier = new ClassifierBench(sandbox, repo, options.Quick, Log).Run(cancel.Token);
        classifier = classifier with { Seconds = (watch.Elapsed - started).TotalSeconds };
    }

    LoadBalancerResult? loadBalancer = null;
    if (options.Runs(BenchOptions.LoadBalancer))
        loadBalancer = new LoadBalancerBench(sandbox, repo, sampling, options.Quick, Log).Run(cancel.Token);

    string command = string.Join(' ', ["bench/run", .. options.Arguments]);
    var report = new BenchReport(machine, command, options.Quick ? "quick" : "full", sampling, perPacket, lookup, forwarding, reload, controlPlane, footprint, watch.Elapsed)
    {
        Classifier = classifier,
        LoadBalancer = loadBalancer,
    };
    Console.Out.Write(options.Json ? JsonReport.Render(report) : MarkdownReport.Render(report));
    // A report with a hole is a failed run (CI runs --quick for exactly this): say what is missing.
    var missing = ReportCheck.Missing(report, options);
    if (missing.Count > 0)
    {
        Console.Error.WriteLine($"bench: incomplete report: {string.Join("; ", missing)}");
        return 1;
    }
    Log($"done in {watch.Elapsed.TotalSeconds:F0} s");
    return 0;
}
catch (Exception e) when (e is OperationCanceledException || cancel.IsCancellationRequested)
{
    // Ctrl-C reaches child processes (clang) too: whatever failed after it is the interruption.
    Console.Error.WriteLine("bench: interrupted; removing the sandbox");
    return 130;
}
catch (Exception e)
{
    // Engine and harness errors read "verb object: cause"; anything else is a bug worth its stack.
    Console.Error.WriteLine(e is BenchException ? $"bench: {e.Message}" : $"bench: {e}");
    return 1;
}
finally
{
    sandbox?.Dispose();
}
