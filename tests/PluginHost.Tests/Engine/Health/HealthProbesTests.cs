using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Health;
using PluginHost.Hosting;
using PluginHost.Pipelines;
using Xunit;

namespace PluginHost.Tests.Engine.Health;

/// <summary>The probes' state machine, the probe set following applies, and the prober's loop, on a fake clock.</summary>
[Trait("Category", "Unit")]
public sealed class HealthProbesTests : IDisposable
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-11-29T12:00:00Z");
    private readonly FakeTimeProvider _time = new(Start);
    private readonly string _runtime = Directory.CreateTempSubdirectory("pluginhost-probes-").FullName;

    public void Dispose() => Directory.Delete(_runtime, recursive: true);

    private static Probe Icmp(string name = "b1", string target = "198.18.3.2") =>
        new(name, "up1", IPAddress.Parse(target), ProbeKind.Icmp) { Interval = TimeSpan.FromMilliseconds(200), Timeout = TimeSpan.FromMilliseconds(100), FailuresToDown = 3, SuccessesToUp = 2 };

    [Fact]
    public void AProbeStartsUnknownAndGoesDownAfterItsFailuresInARow()
    {
        var health = new ProbeHealth(Start);
        Assert.Equal(ProbeState.Unknown, health.State);
        Assert.Null(health.Record(ProbeResult.Failure("timeout after 100 ms"), 3, 2, Start.AddSeconds(1)));
        Assert.Null(health.Record(ProbeResult.Failure("timeout after 100 ms"), 3, 2, Start.AddSeconds(2)));
        Assert.Equal(ProbeState.Unknown, health.State);
        var down = health.Record(ProbeResult.Failure("connection refused"), 3, 2, Start.AddSeconds(3));

        Assert.Equal(new ProbeTransition(ProbeState.Unknown, ProbeState.Down, 3, TimeSpan.FromSeconds(3), "connection refused"), down);
        Assert.Equal(ProbeState.Down, health.State);
        Assert.Equal(Start.AddSeconds(3), health.Since);
        Assert.Null(health.Record(ProbeResult.Failure("connection refused"), 3, 2, Start.AddSeconds(4))); // already down: no change
    }

    [Fact]
    public void ASuccessBreaksARunOfFailuresAndSuccessesInARowBringItUp()
    {
        var health = new ProbeHealth(Start);
        health.Record(ProbeResult.Failure("x"), 2, 2, Start);
        health.Record(ProbeResult.Success, 2, 2, Start);
        Assert.Null(health.Record(ProbeResult.Failure("x"), 2, 2, Start)); // 1 failure in a row, not 2
        var down = health.Record(ProbeResult.Failure("x"), 2, 2, Start.AddSeconds(1));
        Assert.Equal(ProbeState.Down, down!.To);

        Assert.Null(health.Record(ProbeResult.Success, 2, 2, Start.AddSeconds(2)));
        Assert.Null(health.Record(ProbeResult.Failure("y"), 2, 2, Start.AddSeconds(3))); // the run of successes starts again
        Assert.Null(health.Record(ProbeResult.Success, 2, 2, Start.AddSeconds(4)));
        var up = health.Record(ProbeResult.Success, 2, 2, Start.AddSeconds(5));

        Assert.Equal(new ProbeTransition(ProbeState.Down, ProbeState.Up, 2, TimeSpan.FromSeconds(4), null), up);
        Assert.Equal("y", health.LastError); // kept: status says why it was last down
    }

    [Fact]
    public void UnknownBecomesUpAfterItsSuccesses()
    {
        var health = new ProbeHealth(Start);
        Assert.Null(health.Record(ProbeResult.Success, 3, 2, Start));
        Assert.Equal(ProbeState.Up, health.Record(ProbeResult.Success, 3, 2, Start)!.To);
    }

    [Fact]
    public void TheProbeSetFollowsAppliesAndAnUnchangedProbeKeepsItsState()
    {
        var probes = new HealthProbes(NullLogger.Instance, _time);
        int changes = 0;
        probes.Changed += () => changes++;
        probes.Applied(_runtime, [Planned(Icmp("b1"), Icmp("b2", "198.18.3.3"))]);
        Assert.Equal(1, changes);
        var b1 = probes.Current.Single(p => p.Probe.Name == "b1");
        var b2 = probes.Current.Single(p => p.Probe.Name == "b2");
        for (int i = 0; i < 3; i++)
        {
            probes.Record(b1, ProbeResult.Failure("timeout after 100 ms"));
            probes.Record(b2, ProbeResult.Failure("timeout after 100 ms"));
        }
        Assert.Equal(ProbeState.Down, probes.StateOf("p", 0, "b1"));

        // b1 unchanged but for its timing: keeps its state; b2's target changed: starts again; b3 is new; the same set again changes nothing.
        probes.Applied(_runtime, [Planned(Icmp("b1") with { FailuresToDown = 5 }, Icmp("b2", "198.18.3.4"), Icmp("b3", "198.18.3.5"))]);
        Assert.Equal(2, changes);
        Assert.Equal(ProbeState.Down, probes.StateOf("p", 0, "b1"));
        Assert.Equal(ProbeState.Unknown, probes.StateOf("p", 0, "b2"));
        Assert.Equal(ProbeState.Unknown, probes.StateOf("p", 0, "b3"));
        Assert.Null(probes.Record(b2, ProbeResult.Success)); // a result of the old b2 counts for nothing
        probes.Applied(_runtime, [Planned(Icmp("b1") with { FailuresToDown = 5 }, Icmp("b2", "198.18.3.4"), Icmp("b3", "198.18.3.5"))]);
        Assert.Equal(2, changes);

        probes.Applied(_runtime, [Planned(Icmp("b3", "198.18.3.5"))]);
        Assert.Equal(ProbeState.Unknown, probes.StateOf("p", 0, "b1")); // gone
        Assert.Equal(["b3"], probes.Current.Select(p => p.Probe.Name));
        Assert.Equal(["b3"], ProbeFile.Load(_runtime)["p"].Select(p => p.Probe));
    }

    [Fact]
    public void AStateChangeIsSavedForStatusWithItsReason()
    {
        var probes = new HealthProbes(NullLogger.Instance, _time);
        probes.Applied(_runtime, [Planned(Icmp() with { FailuresToDown = 1 })]);
        _time.Advance(TimeSpan.FromSeconds(5));
        var change = probes.Record(probes.Current[0], ProbeResult.Failure("timeout after 100 ms"));

        Assert.Equal(ProbeState.Down, change!.To);
        var saved = Assert.Single(ProbeFile.Load(_runtime)["p"]);
        Assert.Equal((ProbeState.Down, Start.AddSeconds(5), "timeout after 100 ms", "198.18.3.2"), (saved.State, saved.Since, saved.LastError, saved.Target));
        probes.Record(probes.Current[0], ProbeResult.Failure("network is unreachable"));
        Assert.Equal("network is unreachable", ProbeFile.Load(_runtime)["p"][0].LastError); // the latest reason while down
    }

    [Fact]
    public async Task TheProberProbesEveryIntervalAndPostsATriggerOnEachChange()
    {
        var probes = new HealthProbes(NullLogger.Instance, _time);
        probes.Applied(_runtime, [Planned(Icmp())]);
        var results = new Queue<ProbeResult>([ProbeResult.Success, ProbeResult.Success, ProbeResult.Failure("t"), ProbeResult.Failure("t"), ProbeResult.Failure("t")]);
        int calls = 0;
        var triggers = new List<Trigger>();
        using (var prober = new Prober(probes, t => { lock (triggers) triggers.Add(t); }, NullLogger.Instance, (_, _) =>
               {
                   Interlocked.Increment(ref calls);
                   lock (results)
                       return Task.FromResult(results.Count > 0 ? results.Dequeue() : ProbeResult.Failure("t"));
               }, _time))
        {
            Assert.Equal(1, prober.Running);
            for (int step = 0; step < 200 && Volatile.Read(ref calls) < 5; step++)
            {
                int before = Volatile.Read(ref calls);
                // The clock moves only when the loop waits: no call runs before its interval is up.
                await Task.Delay(5);
                Assert.True(Volatile.Read(ref calls) <= before + 1);
                _time.Advance(TimeSpan.FromMilliseconds(200));
            }
        }
        Assert.True(calls >= 5, $"{calls} probes");
        lock (triggers)
        {
            Assert.Equal(2, triggers.Count);
            Assert.Equal((Prober.Source, false), (triggers[0].Source, triggers[0].Urgent)); // up: not urgent
            Assert.True(triggers[1].Urgent); // down: urgent
            Assert.Contains("probe b1 of pipeline p stage 0 is down", triggers[1].Detail);
        }
    }

    [Theory]
    [InlineData("", "a name must be")]
    [InlineData("interval", "interval 50 ms: expected 100 ms to 1 h")]
    [InlineData("timeout", "timeout 200 ms: expected 10 ms to less than the interval (200 ms)")]
    [InlineData("port", "TCP port 0: expected 1 to 65535")]
    [InlineData("multicast", "target 224.0.0.5 is multicast")]
    [InlineData("failures", "failures to down 0: expected 1 to 100")]
    public void ProbeSettingsThatCannotWorkAreRefused(string what, string expected)
    {
        var p = Icmp();
        p = what switch
        {
            "" => p with { Name = "" },
            "interval" => p with { Interval = TimeSpan.FromMilliseconds(50), Timeout = TimeSpan.FromMilliseconds(20) },
            "timeout" => p with { Timeout = TimeSpan.FromMilliseconds(200) },
            "port" => p with { Kind = ProbeKind.Tcp },
            "multicast" => p with { Target = IPAddress.Parse("224.0.0.5") },
            _ => p with { FailuresToDown = 0 },
        };
        var errors = new List<string>();
        var ok = ProbeRules.Checked("X", [p, Icmp("b1")], Node(), (_, m) => errors.Add(m));
        Assert.Contains(expected, Assert.Single(errors));
        Assert.StartsWith("plugin X declared probe", errors[0]);
        Assert.Single(ok);
        Assert.Null(ProbeRules.Problem(Icmp() with { Target = IPAddress.Parse("2001:db8::2"), Kind = ProbeKind.Tcp, Port = 80 }));
    }

    private static SettingsNode Node() => Parse().Pipelines[0].Node;

    private static HostConfig Parse() => ConfigLoader.Parse("""
        pipelines:
          - name: p
            interface: eth0
            direction: ingress
            stages:
              - plugin: X
        """, "/etc/ph/config.yaml");

    private static PlannedPipeline Planned(params Probe[] probes) =>
        new(Parse().Pipelines[0], 1, new PipelinePlan("p", Direction.Ingress,
            [new StagePlan("X", new StageTemplate("x.c.sbn", ""), [], new Dictionary<string, long>()) { Probes = probes }]), [new Dictionary<string, PackedEntries>()]);
}
