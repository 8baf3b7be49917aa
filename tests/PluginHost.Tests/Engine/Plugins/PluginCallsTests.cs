using System.Diagnostics;
using PluginHost.Plugins;
using Xunit;

namespace PluginHost.Tests.Engine.Plugins;

/// <summary>Calls into plugin code: a time limit, and the in-flight record that quarantines a build a host died in.</summary>
[Trait("Category", "Unit")]
public sealed class PluginCallsTests : IDisposable
{
    private readonly string _runtime = Directory.CreateTempSubdirectory("ph-calls-").FullName;
    private readonly string _dll;
    private readonly ManualResetEventSlim _release = new();

    public PluginCallsTests()
    {
        _dll = Path.Combine(_runtime, "Fake.dll");
        File.WriteAllText(_dll, "a build");
    }

    public void Dispose()
    {
        _release.Set(); // let an abandoned call end
        Directory.Delete(_runtime, recursive: true);
    }

    // Records with something in them: a host keeps one empty record file open between calls.
    private string[] Records() => Directory.Exists(Path.Combine(_runtime, "plugin-calls"))
        ? Directory.GetFiles(Path.Combine(_runtime, "plugin-calls")).Where(f => new FileInfo(f).Length > 0).ToArray()
        : [];

    [Fact]
    public void A_call_that_returns_leaves_no_record()
    {
        var calls = new PluginCalls(_runtime, TimeSpan.FromSeconds(5));

        Assert.Equal(42, calls.Run(PluginCalls.Build("Fake", _dll), "Configure", null, () => 42));
        Assert.Throws<FormatException>(() => calls.Run<int>(PluginCalls.Build("Fake", _dll), "Configure", null, () => throw new FormatException("bad")));
        Assert.Empty(Records());
    }

    [Fact]
    public void While_a_call_runs_its_record_names_it_and_later_calls_reuse_one_file()
    {
        var calls = new PluginCalls(_runtime, TimeSpan.FromSeconds(5));
        string during = "";

        calls.Run(PluginCalls.Build("Fake", _dll), "Configure", null, () => during = File.ReadAllText(Assert.Single(Records())));
        calls.Run(PluginCalls.Build("Fake", _dll), "Migrate", null, () => 0);

        Assert.Contains("\"Configure\"", during);
        Assert.Single(Directory.GetFiles(Path.Combine(_runtime, "plugin-calls"))); // kept open, empty between calls
        Assert.Empty(Records());
        // This process's open record file is not a dead host's.
        Assert.Empty(new PluginCalls(_runtime, TimeSpan.FromSeconds(5)).QuarantineLeftovers(DateTimeOffset.UnixEpoch));
        Directory.Delete(Path.Combine(_runtime, "plugin-calls"), recursive: true);
        calls.Run(PluginCalls.Build("Fake", _dll), "Configure", null, () => during = File.ReadAllText(Assert.Single(Records())));
        Assert.Contains("\"Configure\"", during);
    }

    [Fact]
    public void A_call_past_its_limit_is_abandoned_in_time_and_its_record_stays()
    {
        var calls = new PluginCalls(_runtime, TimeSpan.FromMilliseconds(300));
        var watch = Stopwatch.StartNew();

        var e = Assert.Throws<PluginTimeoutException>(() => calls.Run(PluginCalls.Build("Fake", _dll), "Configure", null, () => _release.Wait(TimeSpan.FromMinutes(1))));

        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(3));
        Assert.StartsWith("call plugin Fake Configure: no answer within 0.3 s; abandoned", e.Message);
        Assert.Single(Records());
    }

    [Fact]
    public void A_record_a_dead_host_left_quarantines_that_build_only()
    {
        var calls = new PluginCalls(_runtime, TimeSpan.FromMilliseconds(100));
        Assert.Throws<PluginTimeoutException>(() => calls.Run(PluginCalls.Build("Fake", _dll), "Configure", null, () => _release.Wait(TimeSpan.FromMinutes(1))));

        // The next host: the record is evidence that the process died (or was stopped) inside that call.
        var found = new PluginCalls(_runtime, TimeSpan.FromSeconds(5)).QuarantineLeftovers(DateTimeOffset.UnixEpoch);

        var q = Assert.Single(found);
        Assert.Equal(("Fake", "Configure", PluginCalls.Build("Fake", _dll).Sha256), (q.Plugin, q.Call, q.Sha256));
        Assert.Empty(Records());
        Assert.Single(calls.Quarantined());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(calls.QuarantineFile));
        File.WriteAllText(_dll, "a new build");
        Assert.DoesNotContain(calls.Quarantined(), x => x.Sha256 == PluginCalls.Build("Fake", _dll).Sha256);
    }

    // Seen in the crash lab: a plugin's own thread threw while the host was inside another plugin's Configure.
    [Fact]
    public void A_plugin_that_crashes_the_process_from_its_own_thread_is_quarantined_alone()
    {
        string other = Path.Combine(_runtime, "Other.dll");
        File.WriteAllText(other, "another build");
        var calls = new PluginCalls(_runtime, TimeSpan.FromMilliseconds(100));
        Assert.Throws<PluginTimeoutException>(() => calls.Run(PluginCalls.Build("Other", other), "Configure", null, () => _release.Wait(TimeSpan.FromMinutes(1))));

        calls.RecordCrash(PluginCalls.Build("Fake", _dll), "own thread (InvalidOperationException)");
        var found = new PluginCalls(_runtime, TimeSpan.FromSeconds(5)).QuarantineLeftovers(DateTimeOffset.UnixEpoch);

        Assert.Equal(("Fake", "own thread (InvalidOperationException)"), (Assert.Single(found).Plugin, found[0].Call));
    }
}
