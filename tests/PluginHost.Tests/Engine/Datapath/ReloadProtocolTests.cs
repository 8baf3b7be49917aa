using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Interop;
using PluginHost.Observe;
using PluginHost.Pipelines;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>
/// The reload protocol against scripted kernel replies: for a failure at each step (load, fill, canary, state save,
/// link update, retire), what runs afterwards, what is pinned and what the state files say.
/// </summary>
[Trait("Category", "Unit")]
public sealed class ReloadProtocolTests
{
    private const string Root = "/sys/fs/bpf/fake";
    private static readonly TimeSpan RetireAfter = TimeSpan.FromSeconds(2);

    private static readonly MapSchema Routes = new("routes", MapKind.Hash, [new("k", FieldType.U32)], [new("v", FieldType.U32)], 64);

    private const string Template = """
        static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta)
        {
        	{{ maps.routes.key_type }} key = { .k = {{ constants.code }} };
        	if (bpf_map_lookup_elem(&{{ maps.routes.name }}, &key))
        		return ph_drop();
        	return ph_next();
        }

        """;

    private readonly FakeKernel _kernel = new();
    private readonly FakeStore _store = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-29T12:00:00Z"));
    private readonly List<string> _faultPoints = [];
    private readonly PipelineDeployer _deployer;

    public ReloadProtocolTests() => _deployer = NewDeployer();

    // A host process: a restarted one shares the kernel (pins) and the runtime directory (state files), nothing else.
    private PipelineDeployer NewDeployer() =>
        new(Root, _store, _kernel, new FakeCompiler(), RetireAfter, _time, NullLogger.Instance, faultPoint: _faultPoints.Add);

    /// <summary>A one-stage pipeline: <paramref name="code"/> is compiled into the stage (a change means a new generation),
    /// <paramref name="keys"/> are its map's entries (a change is made in place).</summary>
    private static PlannedPipeline Pipeline(string name, long code, params uint[] keys) => PipelineOn(7, name, code, keys);

    private static PlannedPipeline PipelineOn(int ifindex, string name, long code, params uint[] keys)
    {
        var stage = new StagePlan("Fake", new StageTemplate("fake.c.sbn", Template), [Routes], new Dictionary<string, long> { ["code"] = code });
        var entries = new PackedEntries(4, 4);
        foreach (uint k in keys)
            entries.Add(BitConverter.GetBytes(k), BitConverter.GetBytes(k + 1000));
        var config = new PipelineConfig(name, "eth0", Direction.Ingress, null, [], new SettingsNode($"pipelines[{name}]", 1, SettingsKind.Mapping));
        return new PlannedPipeline(config, ifindex, new PipelinePlan(name, Direction.Ingress, [stage]), [new Dictionary<string, PackedEntries> { ["routes"] = entries }]);
    }

    private static string Link(string pipeline) => $"{Root}/{pipeline}/link";

    private uint EntryId(string pipeline, uint generation) => _kernel.Programs[$"{Root}/{pipeline}/g{generation}/ph_entry"];

    private FakeKernel.FakeMap RoutesOf(string pipeline) => _kernel.Maps[_store.States[pipeline].Maps.Single().Pin];

    private static string Hex(uint k) => Convert.ToHexString(BitConverter.GetBytes(k));

    /// <summary>Two pipelines deployed once (generation 1 each), then a change to both: a runs new code, b too.</summary>
    private (IReadOnlyList<string> Pins, Dictionary<string, PipelineState> States) DeployTwo()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10), Pipeline("b", 1, 20)]);
        return (_kernel.AllPins, new Dictionary<string, PipelineState>(_store.States));
    }

    private void AssertUnchanged((IReadOnlyList<string> Pins, Dictionary<string, PipelineState> States) before)
    {
        Assert.Equal(before.Pins, _kernel.AllPins);
        Assert.Equal(EntryId("a", 1), _kernel.Running(Link("a")));
        Assert.Equal(EntryId("b", 1), _kernel.Running(Link("b")));
        Assert.Same(before.States["a"], _store.States["a"]);
        Assert.Same(before.States["b"], _store.States["b"]);
        Assert.Equal(new[] { Hex(10) }, RoutesOf("a").Entries.Keys);
        Assert.Equal(new[] { Hex(20) }, RoutesOf("b").Entries.Keys);
    }

    [Fact]
    public void First_apply_attaches_each_pipeline_and_records_it()
    {
        var results = _deployer.ApplyAll([Pipeline("a", 1, 10), Pipeline("b", 1, 20)]);

        Assert.Equal(new[] { ApplyKind.Attached, ApplyKind.Attached }, results.Select(r => r.Kind));
        Assert.Equal(EntryId("a", 1), _kernel.Running(Link("a")));
        Assert.Equal(EntryId("b", 1), _kernel.Running(Link("b")));
        Assert.Equal(1u, _store.States["a"].Generation);
        Assert.Equal(new[] { Hex(10) }, RoutesOf("a").Entries.Keys);
    }

    [Fact]
    public void New_code_swaps_by_compare_and_swap_and_keeps_the_old_generation_for_its_grace_period()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        var mapBefore = RoutesOf("a");

        var result = _deployer.Apply(Pipeline("a", 2, 10, 11));

        Assert.Equal((ApplyKind.Swapped, 2u), (result.Kind, result.Generation));
        Assert.Equal(EntryId("a", 2), _kernel.Running(Link("a")));
        Assert.Same(mapBefore, RoutesOf("a")); // same layout: the map is taken over, changed by difference
        Assert.Equal(new[] { Hex(10), Hex(11) }, RoutesOf("a").Entries.Keys);
        Assert.True(_kernel.Exists($"{Root}/a/g1"));
        Assert.Equal(1u, Assert.Single(_store.States["a"].Retiring).Generation);
    }

    [Fact]
    public void A_retiring_generation_goes_only_after_its_grace_period()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        _deployer.Apply(Pipeline("a", 2, 10));

        _time.Advance(RetireAfter - TimeSpan.FromMilliseconds(1));
        _deployer.RetireDue("a");
        Assert.True(_kernel.Exists($"{Root}/a/g1"));

        _time.Advance(TimeSpan.FromMilliseconds(2));
        _deployer.RetireDue("a");
        Assert.False(_kernel.Exists($"{Root}/a/g1"));
        Assert.Empty(_store.States["a"].Retiring);
        Assert.Equal(10ul, _store.States["a"].Retired.Entry[EntryCounter.Packets]); // its counters folded into the totals
    }

    [Theory]
    [InlineData("load")]
    [InlineData("write")]
    [InlineData("canary")]
    [InlineData("pin")]
    public void A_failure_preparing_the_second_pipeline_swaps_nothing_and_unpins_what_the_attempt_pinned(string step)
    {
        var before = DeployTwo();
        // Past a's canary (a is fully prepared), at the step for b: maps are named alike in both pipelines (s0_routes).
        _kernel.Fail = (op, target) => op == step && _kernel.Operations.Contains("canary a") && (step == "write" || target == "b" || target.Contains("/b/"))
            ? new BpfException($"{step} {target}: scripted failure") : null;

        // a gains a route and new code; b's new generation fails at the step.
        var e = Assert.ThrowsAny<Exception>(() => _deployer.ApplyAll([Pipeline("a", 2, 10, 11), Pipeline("b", 2, 20, 21)]));

        Assert.Contains("scripted failure", e.Message);
        AssertUnchanged(before);
    }

    [Fact]
    public void A_canary_failure_names_the_pipeline()
    {
        DeployTwo();
        _kernel.Fail = (op, target) => op == "canary" && target == "b" ? new CanaryException("canary of stage 0 (Fake) 'x': expected drop, got pass") : null;

        var e = Assert.Throws<CanaryException>(() => _deployer.ApplyAll([Pipeline("a", 2, 10), Pipeline("b", 2, 20)]));

        Assert.StartsWith("canary pipeline b: canary of stage 0 (Fake)", e.Message);
    }

    /// <summary>The same pipeline from another plugin build (same C), or with other canaries.</summary>
    private static PlannedPipeline Rebuilt(PlannedPipeline planned, string sha256, params CanaryPacket[] canaries) =>
        planned with
        {
            Plan = planned.Plan with
            {
                Stages = [planned.Plan.Stages[0] with { Build = new StageBuild("2.0.0+" + sha256[..4], sha256), Canaries = canaries }],
            },
        };

    private int CanaryRuns => _kernel.Operations.Count(o => o.StartsWith("canary ", StringComparison.Ordinal));

    [Fact]
    public void A_new_plugin_build_with_the_same_C_runs_its_canaries_and_a_wrong_one_refuses_it()
    {
        // Issue 14: a DLL whose C# changed but whose generated C did not went in place, its canaries skipped.
        var canary = new CanaryPacket("x", CanaryFrames.Ipv4Udp(System.Net.IPAddress.Loopback, System.Net.IPAddress.Loopback), CanaryVerdict.Drop);
        _deployer.Apply(Rebuilt(Pipeline("a", 1, 10), "aaaa1111aaaa1111", canary));
        var deployed = _store.States["a"];
        Assert.Equal(1, CanaryRuns);
        Assert.Equal(3, deployed.CanariesPassed); // FakeKernel: stages + 2 host canaries
        Assert.Equal(("2.0.0+aaaa", "aaaa1111aaaa1111"), (deployed.Stages[0].Version, deployed.Stages[0].Sha256));

        // The same build again: nothing to check again.
        Assert.Equal(ApplyKind.Unchanged, _deployer.Apply(Rebuilt(Pipeline("a", 1, 10), "aaaa1111aaaa1111", canary)).Kind);
        Assert.Equal(1, CanaryRuns);

        // Another build, same C and entries, whose canary comes out wrong: refused, nothing recorded.
        _kernel.Fail = (op, _) => op == "canary" ? new CanaryException("canary of stage 0 (Fake) 'x': expected drop, got pass") : null;
        var e = Assert.Throws<CanaryException>(() => _deployer.Apply(Rebuilt(Pipeline("a", 1, 10), "bbbb2222bbbb2222", canary)));
        Assert.StartsWith("canary pipeline a: canary of stage 0 (Fake) 'x'", e.Message);
        Assert.Same(deployed, _store.States["a"]);
        Assert.Equal(2, CanaryRuns);

        // A good build: its canaries run (through a copy: the running generation stays), then it is what status shows.
        _kernel.Fail = (_, _) => null;
        var result = _deployer.Apply(Rebuilt(Pipeline("a", 1, 10), "cccc3333cccc3333", canary));
        Assert.Equal((ApplyKind.Unchanged, 1u, 3), (result.Kind, result.Generation, result.CanariesRun));
        Assert.Equal(3, CanaryRuns);
        Assert.Equal("cccc3333cccc3333", _store.States["a"].Stages[0].Sha256);
        Assert.Equal(deployed.CodeKey, _store.States["a"].CodeKey);
    }

    [Fact]
    public void A_settings_change_under_the_same_build_is_map_writes_without_a_canary_rehearsal()
    {
        // A runtime command (route add) changes entries and the canaries that follow them, not the code: the rehearsal
        // copy (a second load of the chain) would cost every command hundreds of milliseconds.
        var first = new CanaryPacket("route 10", CanaryFrames.Ipv4Udp(System.Net.IPAddress.Loopback, System.Net.IPAddress.Loopback), CanaryVerdict.Drop);
        var second = first with { Name = "route 11" };
        _deployer.Apply(Rebuilt(Pipeline("a", 1, 10), "aaaa1111aaaa1111", first));
        int runs = CanaryRuns, writes = RoutesOf("a").Log.Count;
        _kernel.Fail = (op, _) => op == "canary" ? new CanaryException("canary of stage 0 (Fake) 'route 11': expected drop, got pass") : null;

        var result = _deployer.Apply(Rebuilt(Pipeline("a", 1, 10, 11), "aaaa1111aaaa1111", first, second));

        Assert.Equal((ApplyKind.MapsUpdated, 0), (result.Kind, result.CanariesRun));
        Assert.Equal(runs, CanaryRuns);
        Assert.True(RoutesOf("a").Log.Count > writes);
    }

    [Fact]
    public void An_in_place_change_waits_for_every_pipeline_to_prepare()
    {
        var before = DeployTwo();
        _kernel.Fail = (op, target) => op == "load" && target == "b" ? new BpfException("load b: scripted failure") : null;

        // a changes only entries (in place), b needs new code that fails to load.
        Assert.Throws<BpfException>(() => _deployer.ApplyAll([Pipeline("a", 1, 11), Pipeline("b", 2, 20)]));

        Assert.Empty(RoutesOf("a").Log.Skip(1)); // only the first deploy's write: a's map was never touched
        AssertUnchanged(before);
    }

    [Fact]
    public void A_failed_state_save_swaps_nothing()
    {
        var before = DeployTwo();
        _store.Fail = state => state.Name == "a" && state.Generation == 2 ? new IOException("write /run/pluginhost/pipelines/a.json: read-only file system") : null;

        var e = Assert.Throws<CommitFailedException>(() => _deployer.ApplyAll([Pipeline("a", 2, 10), Pipeline("b", 2, 20)]));

        Assert.Contains("read-only file system", e.Message);
        Assert.Equal(new[] { "pipeline a: unchanged (its commit failed)", "pipeline b: unchanged (not committed)" }, e.Outcomes);
        AssertUnchanged(before);
    }

    [Fact]
    public void A_refused_link_update_reverts_the_pipelines_already_committed()
    {
        var before = DeployTwo();
        _kernel.Fail = (op, target) => op == "update-link" && target.StartsWith($"{Root}/b/g2") ? new BpfException("update link to program ph_entry", -1) : null;

        var e = Assert.Throws<CommitFailedException>(() => _deployer.ApplyAll([Pipeline("a", 2, 10, 11), Pipeline("b", 2, 20)]));

        Assert.Equal(new[] { "pipeline a: back on generation 1", "pipeline b: unchanged (its commit failed)" }, e.Outcomes);
        Assert.True(e.DatapathUnchanged);
        Assert.Contains("commit pipeline b", e.Message);
        AssertUnchanged(before); // a's link swapped to g2 and back by compare-and-swap; its g2 pins are gone
    }

    [Fact]
    public void A_revert_that_fails_says_which_generation_stays_live_and_keeps_its_state()
    {
        DeployTwo();
        int updates = 0;
        _kernel.Fail = (op, target) => op == "update-link" && ++updates >= 2 ? new BpfException("update link: scripted failure") : null;

        var e = Assert.Throws<CommitFailedException>(() => _deployer.ApplyAll([Pipeline("a", 2, 10), Pipeline("b", 2, 20)]));

        Assert.StartsWith("pipeline a: generation 2 stays live", e.Outcomes[0]);
        Assert.False(e.DatapathUnchanged);
        Assert.Equal(EntryId("a", 2), _kernel.Running(Link("a")));
        Assert.Equal(2u, _store.States["a"].Generation); // the state file says what runs
        Assert.Equal(EntryId("b", 1), _kernel.Running(Link("b")));
    }

    [Fact]
    public void A_failed_first_attach_of_a_later_pipeline_detaches_the_earlier_one_again()
    {
        _kernel.Fail = (op, target) => op == "attach" && target.StartsWith($"{Root}/b/") ? new BpfException("attach program ph_entry", -19) : null;

        var e = Assert.Throws<CommitFailedException>(() => _deployer.ApplyAll([Pipeline("a", 1, 10), Pipeline("b", 1, 20)]));

        Assert.Equal("pipeline a: detached again (it was not attached before)", e.Outcomes[0]);
        Assert.Empty(_kernel.AllPins);
        Assert.Empty(_store.States);
    }

    [Fact]
    public void A_failed_retire_does_not_undo_the_commit_and_is_retried()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        _deployer.Apply(Pipeline("a", 2, 10));
        _time.Advance(RetireAfter * 2);
        _kernel.Fail = (op, target) => op == "remove" && target.EndsWith("/g1") ? new IOException("unlink g1: device busy") : null;

        var result = _deployer.Apply(Pipeline("a", 3, 10));

        Assert.Equal((ApplyKind.Swapped, 3u), (result.Kind, result.Generation));
        Assert.Equal(EntryId("a", 3), _kernel.Running(Link("a")));
        Assert.True(_kernel.Exists($"{Root}/a/g1"));

        _kernel.Fail = (_, _) => null;
        _deployer.RetireDue("a");
        Assert.False(_kernel.Exists($"{Root}/a/g1"));
    }

    [Fact]
    public void The_retirer_never_unpins_the_generation_the_link_runs_whatever_the_state_says()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        // A host killed between recording generation 2 and the link update: the state names g2, the link runs g1.
        _kernel.Fail = (op, _) => op == "update-link" ? new BpfException("host killed") : null;
        var prepared = _deployer.Prepare(Pipeline("a", 2, 10));
        _store.Save(prepared.Plan.NextState(_time.GetUtcNow(), RetireAfter));
        _kernel.Fail = (_, _) => null;
        _time.Advance(RetireAfter * 2);

        _deployer.RetireDue("a");

        Assert.True(_kernel.Exists($"{Root}/a/g1"));
        Assert.Equal(EntryId("a", 1), _kernel.Running(Link("a")));
    }

    [Fact]
    public void In_place_changes_write_before_they_delete()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        var map = RoutesOf("a");
        map.Log.Clear();

        var result = _deployer.Apply(Pipeline("a", 1, 11, 12));

        Assert.Equal((ApplyKind.MapsUpdated, 3), (result.Kind, result.EntriesChanged));
        Assert.Equal(new[] { $"write {Hex(11)}", $"write {Hex(12)}", $"delete {Hex(10)}" }, map.Log);
    }

    [Fact]
    public void A_failed_in_place_change_puts_the_map_back()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10, 11)]);
        int deletes = 0;
        _kernel.Fail = (op, _) => op == "delete" && ++deletes == 1 ? new BpfException("delete map s0_routes", -1) : null;

        Assert.Throws<CommitFailedException>(() => _deployer.Apply(Pipeline("a", 1, 11, 12)));

        Assert.Equal(new[] { Hex(10), Hex(11) }, RoutesOf("a").Entries.Keys);
        Assert.Equal(Convert.ToHexString(BitConverter.GetBytes(1010u)), Convert.ToHexString(RoutesOf("a").Entries[Hex(10)]));
    }

    [Fact]
    public void A_moved_hook_gets_a_new_link_and_the_old_one_goes_only_when_the_apply_finishes()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        var old = _kernel.Links[Link("a")];

        var result = _deployer.Apply(PipelineOn(9, "a", 1, 10)); // same code on another interface: a new generation

        Assert.Equal(ApplyKind.Attached, result.Kind);
        var now = _kernel.Links[Link("a")];
        Assert.NotSame(old, now);
        Assert.Equal((9, EntryId("a", 2)), (now.Ifindex, now.ProgramId));
        Assert.False(old.Pinned);
    }

    [Fact]
    public void A_moved_hook_whose_new_link_cannot_be_pinned_keeps_the_old_link()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        var old = _kernel.Links[Link("a")];
        int pins = 0;
        _kernel.Fail = (op, target) => op == "pin" && target == Link("a") && ++pins == 1 ? new BpfException($"pin {target}", -17) : null;

        var e = Assert.Throws<CommitFailedException>(() => _deployer.Apply(PipelineOn(9, "a", 1, 10)));

        Assert.Equal(new[] { "pipeline a: unchanged (its commit failed)" }, e.Outcomes);
        Assert.Same(old, _kernel.Links[Link("a")]);
        Assert.True(old.Pinned);
        Assert.Equal(EntryId("a", 1), old.ProgramId);
        Assert.False(_kernel.Exists($"{Root}/a/g2"));
        Assert.Equal(1u, _store.States["a"].Generation);
    }

    [Fact]
    public void An_apply_passes_its_fault_points_in_order()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        _time.Advance(RetireAfter * 2);
        _faultPoints.Clear();

        _deployer.Apply(Pipeline("a", 2, 10));
        _time.Advance(RetireAfter * 2);
        _deployer.RetireDue("a");

        Assert.Equal(FaultPoints.All, _faultPoints);
    }

    [Theory]
    [InlineData(2L)] // restarted with the new configuration
    [InlineData(1L)] // restarted with the old one
    public void A_host_killed_between_the_state_write_and_the_link_update_restarts_on_what_the_link_runs(long code)
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        // What the kill leaves: generation 2 prepared and pinned, the state naming it, the link still on generation 1.
        var prepared = _deployer.Prepare(Pipeline("a", 2, 10));
        _store.Save(prepared.Plan.NextState(_time.GetUtcNow(), RetireAfter));
        uint g1 = EntryId("a", 1);

        var restarted = NewDeployer();
        var result = restarted.Apply(Pipeline("a", code, 10));

        if (code == 1)
        {
            Assert.Equal((ApplyKind.Unchanged, 1u), (result.Kind, result.Generation)); // adopted, nothing to swap
            Assert.Equal(g1, _kernel.Running(Link("a")));
        }
        else
        {
            Assert.Equal((ApplyKind.Swapped, 3u), (result.Kind, result.Generation)); // the compare-and-swap expected g1, and met it
            Assert.Equal(EntryId("a", 3), _kernel.Running(Link("a")));
        }
        Assert.Equal(result.Generation, _store.States["a"].Generation);
        _time.Advance(RetireAfter * 2);
        restarted.RetireDue("a");
        Assert.False(_kernel.Exists($"{Root}/a/g2")); // never ran: retired, not orphaned
        Assert.Equal(new[] { result.Generation }, _kernel.PinnedGenerations($"{Root}/a"));
    }

    [Fact]
    public void The_audit_pins_again_what_was_removed_by_hand()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        string chain = $"{Root}/a/g1/ph_chain";
        string map = _store.States["a"].Maps.Single().Pin;
        _kernel.Remove(chain);
        _kernel.Remove(map);

        var restored = _deployer.Audit("a");

        Assert.Equal(new[] { chain, map }.Order(), restored.Order());
        Assert.True(_kernel.Exists(chain));
        Assert.True(_kernel.Exists(map));
    }

    [Fact]
    public void The_audit_pins_again_a_whole_generation_directory_removed_by_hand()
    {
        _deployer.ApplyAll([Pipeline("a", 1, 10)]);
        _kernel.Remove($"{Root}/a/g1");

        var restored = _deployer.Audit("a");

        Assert.Equal(new[] { "ph_chain", "ph_entry", "ph_stats" }, restored.Select(Path.GetFileName).Order());
        Assert.Equal(EntryId("a", 1), _kernel.Running(Link("a")));
    }

    [Fact]
    public void A_desired_state_that_changed_during_the_prepare_commits_nothing()
    {
        var before = DeployTwo();

        var e = Assert.Throws<StaleDesiredStateException>(() =>
            _deployer.ApplyAll([Pipeline("a", 2, 10, 11), Pipeline("b", 2, 20)], beforeCommit: () => "config.yaml was rewritten during the apply"));

        Assert.Contains("not committed: config.yaml was rewritten", e.Message);
        AssertUnchanged(before);
    }
}
