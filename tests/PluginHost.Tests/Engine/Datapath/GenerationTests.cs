using PluginHost.TestSupport;
using PluginHost.Observe;
using System.Net;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>The generation-swap protocol on a real tcx hook (no traffic: BPF_PROG_TEST_RUN feeds the live chain).</summary>
[Trait("Category", "Kernel")]
public sealed class GenerationTests : IDisposable
{
    private const string Stages = """
              - plugin: MarkPolicy
              - plugin: SourcePolicy
                settings:
                  routes:
                    - from: 198.18.1.0/24
                      interface: out1
        """;

    private readonly KernelChain _net = new();
    private readonly ReloadRig _rig = new();

    public GenerationTests()
    {
        _rig.UsePlugin(Repo.MarkPolicy(1));
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stages);
    }

    public void Dispose()
    {
        _rig.Dispose();
        _net.Dispose();
    }

    private string SeenPin => _rig.State.Maps.Single(m => m.PinName == "MarkPolicy-0-seen").Pin;

    // Packets through the live entry program: MarkPolicy learns their sources in its state map.
    private void Feed(params string[] sources)
    {
        using var entry = _rig.LiveEntry();
        foreach (var source in sources)
            Assert.Equal(7, entry.TestRun(Packets.Ipv4Udp(source, "198.18.9.1")).ReturnValue);
    }

    [KernelFact]
    public void NewPluginVersionSwapsGenerationAndKeepsStateMap()
    {
        var engine = _rig.Engine();
        var first = engine.Apply().Single();
        Feed("198.18.1.1", "198.18.1.2", "198.18.1.2");
        string pin = SeenPin;
        var before = ReloadRig.Dump(pin);
        Assert.Equal(2, before.Count);

        _rig.UsePlugin(Repo.MarkPolicy(2));
        var second = engine.Apply().Single();

        Assert.Equal(ApplyKind.Swapped, second.Kind);
        Assert.Equal(first.LinkId, second.LinkId);
        Assert.NotEqual(first.ProgramId, second.ProgramId);
        Assert.Equal(second.ProgramId, _rig.AttachedProgramId());
        Assert.Equal(pin, SeenPin);                  // the same pinned map, not a copy
        Assert.Equal(before, ReloadRig.Dump(pin));   // with its learned entries
        Feed("198.18.1.2");
        Assert.Equal(2, ReloadRig.Dump(pin).Count);
        Assert.True(second.CanariesRun >= 3, $"canaries run: {second.CanariesRun}");
    }

    [KernelFact]
    public void ChangedStateLayoutWithoutMigrationIsRefusedAndLeavesEverythingAsItWas()
    {
        var engine = _rig.Engine();
        var first = engine.Apply().Single();
        Feed("198.18.1.7");
        var before = ReloadRig.Dump(SeenPin);
        var pinsBefore = Directory.GetFileSystemEntries(_rig.BpfRoot, "*", SearchOption.AllDirectories).Order().ToList();

        _rig.UsePlugin(Repo.MarkPolicy(3));
        var e = Assert.Throws<ReloadRefusedException>(() => engine.Apply());

        Assert.Contains("map MarkPolicy-0-seen changed layout", e.Message);
        Assert.Contains("value field 'bytes' U64 added", e.Message);
        Assert.Contains("provides no migration", e.Message);
        Assert.Equal(first.ProgramId, _rig.AttachedProgramId());
        Assert.Equal(before, ReloadRig.Dump(SeenPin));
        Assert.Equal(pinsBefore, Directory.GetFileSystemEntries(_rig.BpfRoot, "*", SearchOption.AllDirectories).Order().ToList());
        Assert.Contains("changed layout", ReloadHistory.Load(_rig.RuntimeDirectory).LastFailure);
    }

    [KernelFact]
    public void ChangedStateLayoutWithMigrationCarriesEntriesOver()
    {
        var engine = _rig.Engine();
        engine.Apply();
        Feed("198.18.1.7", "198.18.1.7", "198.18.1.7");
        string oldPin = SeenPin;

        _rig.UsePlugin(Repo.MarkPolicy(4));
        var result = engine.Apply().Single();

        Assert.Equal(ApplyKind.Swapped, result.Kind);
        Assert.NotEqual(oldPin, SeenPin);
        Assert.False(File.Exists(oldPin), "the old-layout map is unpinned once its generation retired");
        var migrated = Assert.Single(ReloadRig.Dump(SeenPin));
        Assert.Equal("C6120107", migrated.Key);                       // 198.18.1.7
        Assert.Equal("0300000000000000" + "0000000000000000", migrated.Value); // packets 3 carried over, bytes 0 (new field)
    }

    [KernelFact]
    public void VerifierRejectionAndTemplateErrorKeepTheRunningGeneration()
    {
        var engine = _rig.Engine();
        var first = engine.Apply().Single();

        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stages.Replace("- plugin: MarkPolicy", "- plugin: MarkPolicy\n        settings: { verifierBug: true }"));
        var verifier = Assert.Throws<ChainLoadException>(() => { engine.Reconfigure(PluginHost.Config.ConfigLoader.Load(_rig.ConfigPath)); engine.Apply(); });
        Assert.Contains("stage 0 (plugin MarkPolicy)", verifier.Message);
        Assert.Contains("mark_policy.c.sbn:", verifier.Message);
        Assert.Equal(first.ProgramId, _rig.AttachedProgramId());

        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stages.Replace("- plugin: MarkPolicy", "- plugin: MarkPolicy\n        settings: { templateBug: true }"));
        var template = Assert.Throws<TemplateException>(() => { engine.Reconfigure(PluginHost.Config.ConfigLoader.Load(_rig.ConfigPath)); engine.Apply(); });
        Assert.Equal("MarkPolicy/mark_policy.c.sbn", template.File);
        Assert.Equal(first.ProgramId, _rig.AttachedProgramId());
        Assert.Equal(first.Generation, _rig.State.Generation);
        Assert.Single(Directory.GetDirectories(Path.Combine(_rig.BpfRoot, "p"), "g*"));
        var history = ReloadHistory.Load(_rig.RuntimeDirectory);
        Assert.Equal(2, history.Failures);
    }

    [KernelFact]
    public void RestartedHostAdoptsThePinnedGenerationWithoutTouchingIt()
    {
        var first = _rig.Engine().Apply().Single();
        Feed("198.18.1.9");
        var state = ReloadRig.Dump(SeenPin);

        var restarted = _rig.Engine().Apply().Single(); // a new process would do exactly this

        Assert.Equal(ApplyKind.Unchanged, restarted.Kind);
        Assert.Equal((first.LinkId, first.ProgramId, first.Generation), (restarted.LinkId, restarted.ProgramId, restarted.Generation));
        Assert.Equal(state, ReloadRig.Dump(SeenPin));
    }

    [KernelFact]
    public void CountersSurviveGenerationsAndCanariesAreNotCounted()
    {
        var engine = _rig.Engine();
        engine.Apply();
        Feed("198.18.1.1", "198.18.1.2");
        _rig.UsePlugin(Repo.MarkPolicy(2));
        engine.Apply();
        Feed("198.18.1.3");

        var totals = CounterReader.ReadPinned(_rig.State);

        Assert.Equal(3ul, totals.Entry[EntryCounter.Ipv4]); // (the hook is live: IPv4 is only ours, other frames may come)
        Assert.Equal(3ul, totals.Stages[1][StageCounter.Redirected]);
        Assert.Equal(0ul, totals.Stages[0][StageCounter.GenerationMismatch]);
        Assert.Equal(0ul, totals.Stages[0][StageCounter.MissedTailCalls]);
    }

    [KernelFact]
    public void PluginsAreUnloadedAcrossRepeatedReloads()
    {
        var engine = _rig.Engine();
        for (int i = 0; i < 10; i++)
        {
            _rig.UsePlugin(Repo.MarkPolicy(1 + i % 2));
            engine.Apply();
        }
        engine.ReleasePlugins(); // the current set too
        for (int i = 0; i < 20 && engine.PendingUnloads > 0; i++)
            engine.CheckUnloaded(TimeSpan.MaxValue);
        Assert.Equal(0, engine.PendingUnloads);
    }

    [KernelFact]
    public async Task ThousandTriggersInASecondCauseAtMostTwoPasses()
    {
        var engine = _rig.Engine();
        engine.Apply();
        var reconciler = new Reconciler(_rig.ConfigPath, engine, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        using var stop = new CancellationTokenSource();
        var running = reconciler.RunAsync(stop.Token);

        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 1000; i++)
        {
            reconciler.Post(new Trigger("test", $"trigger {i}"));
            if (i % 10 == 9)
                Thread.Sleep(Math.Max(0, (int)(i - watch.ElapsedMilliseconds))); // spread over about one second
        }
        await Task.Delay(Reconciler.MaxDelay + TimeSpan.FromMilliseconds(500));
        stop.Cancel();
        await running;

        Assert.InRange(reconciler.Passes, 1, 2);
        Assert.Equal(0, reconciler.Failures);
        Assert.Equal(ApplyKind.Unchanged, engine.Apply().Single().Kind); // and nothing was swapped
    }

    [KernelFact]
    public void APluginThatPreventsItsUnloadingIsReported()
    {
        _rig.UsePlugin(Path.Combine(Repo.Root, "artifacts", "test-plugins", "sticky", "StickyPolicy"));
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stages + "\n      - plugin: StickyPolicy\n"); // only named plugins load
        var engine = _rig.Engine();
        engine.Apply();
        engine.ReleasePlugins();

        // Well-behaved plugins are collected within a few GC cycles; the sticky one never is.
        for (int i = 0; i < 10 && engine.PendingUnloads > 1; i++)
            engine.CheckUnloaded(TimeSpan.MaxValue);
        var stuck = engine.CheckUnloaded(TimeSpan.Zero);

        Assert.Equal(["StickyPolicy"], stuck);
        Assert.Equal(0, engine.PendingUnloads); // reported once, then no longer tracked
    }

    [KernelFact]
    public void AShadowedRouteIsReportedNotRefused()
    {
        var engine = _rig.Engine();
        engine.Apply();

        // A second stage whose route the first stage shadows: its canary is taken by the first stage, as real packets would be.
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stages + """

                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: out2
            """);
        engine.Reconfigure(PluginHost.Config.ConfigLoader.Load(_rig.ConfigPath));
        var result = engine.Apply().Single();

        Assert.Equal(ApplyKind.Swapped, result.Kind);
        var shadowed = Assert.Single(result.Shadowed);
        Assert.Contains("canary of stage 2 (SourcePolicy) 'route 198.18.1.0/24' was decided by stage 1 (SourcePolicy)", shadowed);
    }

    [KernelFact]
    public void AWrongCanaryVerdictRefusesTheGenerationNamingStageAndPacket()
    {
        using var chain = _net.Load("""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: out1
            """);
        var wrong = new StagePlan("SourcePolicy", new StageTemplate("t.c.sbn", ""), [], new Dictionary<string, long>())
        {
            Canaries = [new CanaryPacket("must drop", CanaryFrames.Ipv4Udp(IPAddress.Parse("198.18.1.5"), IPAddress.Parse("192.0.2.1")), CanaryVerdict.Drop)],
        };

        var e = Assert.Throws<CanaryException>(() => Canaries.Run(chain, [wrong]));

        Assert.Equal($"canary of stage 0 (SourcePolicy) 'must drop': expected drop, got redirect to ifindex {_net.Ifindex(KernelChain.Out1)}", e.Message);
    }

    [KernelFact]
    public void PinsRemovedByHandArePinnedAgainFromTheHostsFds()
    {
        var engine = _rig.Engine();
        engine.Apply();
        string chain = Path.Combine(_rig.State.GenerationDirectory, "ph_chain");
        string seen = SeenPin;
        File.Delete(chain); // unpinned, and no other reference than the host's: the kernel would empty the prog array
        File.Delete(seen);

        var restored = engine.Audit();

        Assert.Equal(new[] { chain, seen }.Order(), restored.Order());
        Assert.True(File.Exists(chain) && File.Exists(seen));
        Feed("198.18.1.9"); // stage 1 (SourcePolicy, reached by a tail call) still redirects
    }
}
