using Microsoft.Extensions.Logging;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Observe;
using PluginHost.TestSupport;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Hosting;

/// <summary>
/// Issue 14 on the real kernel: a new plugin build whose generated C is the same (here: the DLL with a byte appended,
/// which .NET loads as before) went in place with its canaries skipped; now they run first (MarkPolicy's canaryBug
/// compiles nothing) and a wrong one is refused. A good apply after the failure is logged as clearing it, and status
/// names the build and the canaries that passed.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class CanaryRerunKernelTests : IDisposable
{
    private readonly KernelChain _net = new();
    private readonly string _work = Directory.CreateTempSubdirectory("pluginhost-canary-rerun-").FullName;
    private readonly string _bpfRoot = $"/sys/fs/bpf/pluginhost-test-{Guid.NewGuid():N}";
    private readonly LogLines _log = new();

    public void Dispose()
    {
        BpfFs.RemoveTree(_bpfRoot);
        Directory.Delete(_work, recursive: true);
        _net.Dispose();
    }

    private string Plugins => Path.Combine(_work, "plugins");

    private string Dll => Path.Combine(Plugins, "MarkPolicy", "MarkPolicy.dll");

    private HostConfig Config(string settings)
    {
        string path = Path.Combine(_work, "config.yaml");
        File.WriteAllText(path, HostYaml.Config(Plugins, _bpfRoot, Path.Combine(_work, "run"), Path.Combine(_work, "cache"),
            HostYaml.Pipeline("rerun", _net.Namespace.Name, KernelChain.Input, $"      - plugin: MarkPolicy\n        settings: {settings}\n")));
        return ConfigLoader.Load(path);
    }

    [KernelFact]
    public void A_new_build_with_the_same_code_runs_its_canaries_and_a_wrong_one_is_refused_then_cleared()
    {
        HostYaml.CopyPlugin(Repo.MarkPolicy(1), Plugins);
        using var loggers = LoggerFactory.Create(b => b.AddProvider(_log));
        var engine = new HostEngine(Config("{}"), loggers, retireAfter: TimeSpan.Zero);
        try
        {
            var first = engine.Apply().Single();
            Assert.Equal((ApplyKind.Attached, 2), (first.Kind, first.CanariesRun)); // the host's two
            Assert.Contains(_log.Lines, l => l.Contains("generation 1 attached", StringComparison.Ordinal) && l.EndsWith("; 2 canaries passed", StringComparison.Ordinal));

            File.AppendAllText(Dll, "\0"); // another build, the same C
            engine.Reconfigure(Config("{ canaryBug: true }"));
            var e = Assert.ThrowsAny<HostException>(() => engine.Apply());
            Assert.Contains("canary of stage 0 (MarkPolicy) 'expects a drop': expected drop, got pass", e.Message);

            engine.Reconfigure(Config("{}"));
            var good = engine.Apply().Single();
            Assert.Equal((ApplyKind.Unchanged, 1u), (good.Kind, good.Generation));
            Assert.Single(_log.Lines, l => l.Contains("cleared: this apply succeeded", StringComparison.Ordinal));
            engine.Apply();
            Assert.Single(_log.Lines, l => l.Contains("cleared: this apply succeeded", StringComparison.Ordinal)); // once

            var status = StatusReport.Status(Path.Combine(_work, "run")).Single();
            var build = Assert.Single(status.Builds);
            Assert.Equal(("MarkPolicy", 64), (build.Plugin, build.Sha256.Length));
            Assert.NotEmpty(build.Version);
            Assert.Equal(2, status.CanariesPassed);
            string json = System.Text.Json.JsonSerializer.Serialize(status, HostJson.Lines);
            Assert.Contains($"\"builds\":[{{\"index\":0,\"plugin\":\"MarkPolicy\",\"version\":\"{build.Version}\",\"sha256\":\"{build.Sha256}\"}}]", json);
            Assert.Contains("\"canariesPassed\":2", json);
        }
        finally
        {
            engine.Uninstall();
        }
    }

    private sealed class LogLines : ILoggerProvider, ILogger
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                    return _lines.ToList();
            }
        }

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines)
                _lines.Add(formatter(state, exception));
        }

        public void Dispose()
        {
        }
    }
}
