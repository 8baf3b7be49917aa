using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Interop;
using PluginHost.Pipelines;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>
/// Double-buffered maps against scripted kernel replies: a change goes into the copies packets do not use, then the
/// stage's bank selector flips; what packets use is never written, an unchanged apply writes nothing, and a failure
/// leaves packets on the copies they used.
/// </summary>
[Trait("Category", "Unit")]
public sealed class DoubleBufferedMapTests
{
    private const string Root = "/sys/fs/bpf/fake";

    private static readonly MapSchema Table = new("table", MapKind.Hash, [new("k", FieldType.U32)], [new("v", FieldType.U32)], 64) { DoubleBuffered = true };
    private static readonly MapSchema Plain = new("plain", MapKind.Hash, [new("k", FieldType.U32)], [new("v", FieldType.U32)], 64);

    private const string Template = """
        static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta)
        {
        	{{ maps.table.key_type }} key = { .k = {{ constants.code }} };
        	void *hit = {{ stage.bank }} ? bpf_map_lookup_elem(&{{ maps.table.name_b }}, &key) : bpf_map_lookup_elem(&{{ maps.table.name }}, &key);
        	return hit ? ph_drop() : ph_next();
        }

        """;

    private readonly FakeKernel _kernel = new();
    private readonly FakeStore _store = new();
    private readonly PipelineDeployer _deployer;

    public DoubleBufferedMapTests() => _deployer = NewDeployer();

    private PipelineDeployer NewDeployer() =>
        new(Root, _store, _kernel, new FakeCompiler(), TimeSpan.FromSeconds(2), new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T12:00:00Z")),
            NullLogger.Instance);

    private static PlannedPipeline Pipeline(long code, uint[] table, params uint[] plain)
    {
        var stage = new StagePlan("Fake", new StageTemplate("fake.c.sbn", Template), [Table, Plain], new Dictionary<string, long> { ["code"] = code });
        var config = new PipelineConfig("p", "eth0", Direction.Ingress, null, [], new SettingsNode("pipelines[p]", 1, SettingsKind.Mapping));
        return new PlannedPipeline(config, 7, new PipelinePlan("p", Direction.Ingress, [stage]),
            [new Dictionary<string, PackedEntries> { ["table"] = Entries(table), ["plain"] = Entries(plain) }]);
    }

    private static PackedEntries Entries(uint[] keys)
    {
        var entries = new PackedEntries(4, 4);
        foreach (uint k in keys)
            entries.Add(BitConverter.GetBytes(k), BitConverter.GetBytes(k + 1000));
        return entries;
    }

    private FakeKernel.FakeMap MapNamed(string cName) => _kernel.Maps[_store.States["p"].Maps.Single(m => m.CName == cName).Pin];

    private FakeKernel.FakeMap CopyA => MapNamed("s0_table");

    private FakeKernel.FakeMap CopyB => MapNamed("s0_table_b");

    private uint Bank => MapNamed("s0_bank").Entries.Values.Select(v => BitConverter.ToUInt32(v)).SingleOrDefault();

    private static IEnumerable<string> Keys(params uint[] keys) => keys.Select(k => Convert.ToHexString(BitConverter.GetBytes(k)));

    [Fact]
    public void A_stage_gets_two_copies_and_a_selector_and_its_template_both_names()
    {
        var spec = ChainComposer.Compose(Pipeline(1, [1]).Plan);

        Assert.Equal(["s0_bank", "s0_plain", "s0_table", "s0_table_b"], spec.Stages[0].Maps.Select(m => m.CName).Order(StringComparer.Ordinal));
        Assert.Contains("} s0_table SEC(\".maps\")", spec.Source);
        Assert.Contains("} s0_table_b SEC(\".maps\")", spec.Source);
        Assert.Contains("s0_bank_now() ? bpf_map_lookup_elem(&s0_table_b, &key) : bpf_map_lookup_elem(&s0_table, &key)", spec.Source);
        Assert.Equal(1, spec.Source.Split("struct s0_table_key {").Length - 1); // the copies share one struct
    }

    [Fact]
    public void A_first_apply_fills_both_copies_and_packets_use_the_first()
    {
        _deployer.Apply(Pipeline(1, [1, 2]));

        Assert.Equal(Keys(1, 2), CopyA.Entries.Keys);
        Assert.Equal(Keys(1, 2), CopyB.Entries.Keys);
        Assert.Equal(0u, Bank);
    }

    [Fact]
    public void A_change_is_written_into_the_copy_packets_do_not_use_then_the_selector_flips()
    {
        _deployer.Apply(Pipeline(1, [1, 2]));
        CopyA.Log.Clear();

        var result = _deployer.Apply(Pipeline(1, [1, 3]));

        Assert.Equal(ApplyKind.MapsUpdated, result.Kind);
        Assert.Equal(2, result.EntriesChanged); // 3 added, 2 removed: against what packets used
        Assert.Equal(1u, Bank);
        Assert.Equal(Keys(1, 3), CopyB.Entries.Keys);
        Assert.Empty(CopyA.Log); // what packets used was never written
        Assert.Equal(Keys(1, 2), CopyA.Entries.Keys);
        // The copy written, then the selector: never the other way round.
        var order = _kernel.Operations.Where(o => o.StartsWith("write ", StringComparison.Ordinal) || o.StartsWith("delete ", StringComparison.Ordinal)).ToList();
        Assert.Equal("write s0_bank", order[^1]);
        Assert.Equal(1, _deployer.BankGraceWaits); // this process never flipped it: it waits once, in case another did

        // The next change goes into the first copy, after the grace period begun at the last flip.
        var again = _deployer.Apply(Pipeline(1, [4]));
        Assert.Equal(3, again.EntriesChanged);
        Assert.Equal(0u, Bank);
        Assert.Equal(Keys(4), CopyA.Entries.Keys);
        Assert.Equal(Keys(1, 3), CopyB.Entries.Keys);
        // The first wait, and one begun in the background after each flip.
        Assert.True(SpinWait.SpinUntil(() => _kernel.GracePeriods == 3, TimeSpan.FromSeconds(5)), $"grace periods: {_kernel.GracePeriods}");
    }

    [Fact]
    public void An_unchanged_apply_writes_nothing_and_does_not_flip()
    {
        _deployer.Apply(Pipeline(1, [1, 2]));
        _deployer.Apply(Pipeline(1, [1, 3]));
        int operations = _kernel.Operations.Count(o => o.StartsWith("write ", StringComparison.Ordinal));

        var result = _deployer.Apply(Pipeline(1, [1, 3]));

        Assert.Equal(ApplyKind.Unchanged, result.Kind);
        Assert.Equal(operations, _kernel.Operations.Count(o => o.StartsWith("write ", StringComparison.Ordinal)));
        Assert.Equal(1u, Bank);
    }

    [Fact]
    public void A_restarted_host_reads_what_packets_use_from_the_kernel()
    {
        _deployer.Apply(Pipeline(1, [1, 2]));
        _deployer.Apply(Pipeline(1, [1, 3])); // packets on the second copy

        var restarted = NewDeployer();
        var result = restarted.Apply(Pipeline(1, [1, 3]));
        Assert.Equal(ApplyKind.Unchanged, result.Kind);

        restarted.Apply(Pipeline(1, [5]));
        Assert.Equal(0u, Bank);
        Assert.Equal(Keys(5), CopyA.Entries.Keys);
        Assert.Equal(Keys(1, 3), CopyB.Entries.Keys);
        Assert.Equal(1, restarted.BankGraceWaits);
    }

    [Fact]
    public void A_failed_write_leaves_packets_on_the_copy_they_used()
    {
        _deployer.Apply(Pipeline(1, [1, 2]));
        _kernel.Fail = (op, target) => op == "write" && target == "s0_table_b" ? new BpfException("update map s0_table_b", -12) : null;

        Assert.Contains("update map s0_table_b", Assert.ThrowsAny<Exception>(() => _deployer.Apply(Pipeline(1, [1, 3]))).Message);

        Assert.Equal(0u, Bank);
        Assert.Equal(Keys(1, 2), CopyA.Entries.Keys);
        _kernel.Fail = (_, _) => null;
        _deployer.Apply(Pipeline(1, [1, 3]));
        Assert.Equal(1u, Bank);
        Assert.Equal(Keys(1, 3), CopyB.Entries.Keys);
    }

    [Fact]
    public void A_failure_after_the_flip_flips_back()
    {
        _deployer.Apply(Pipeline(1, [1, 2]));
        // New code with changed entries: the flip is made in prepare, shared with the running generation; the link update fails.
        _kernel.Fail = (op, _) => op == "update-link" ? new BpfException("update link", -1) : null;

        Assert.ThrowsAny<Exception>(() => _deployer.Apply(Pipeline(2, [1, 3])));

        Assert.Equal(0u, Bank);
        Assert.Equal(Keys(1, 2), CopyA.Entries.Keys);
        Assert.Equal(1u, _store.States["p"].Generation);
    }

    [Fact]
    public void New_code_over_the_same_layout_reuses_both_copies_and_the_selector()
    {
        _deployer.Apply(Pipeline(1, [1, 2]));
        var a = CopyA;

        var result = _deployer.Apply(Pipeline(2, [1, 3]));

        Assert.Equal(ApplyKind.Swapped, result.Kind);
        Assert.Same(a, CopyA);
        Assert.Equal(1u, Bank);
        Assert.Equal(Keys(1, 3), CopyB.Entries.Keys);
    }

    [Fact]
    public void A_missing_copy_makes_the_whole_group_fresh()
    {
        _deployer.Apply(Pipeline(1, [1, 2]));
        _deployer.Apply(Pipeline(1, [1, 3])); // bank 1
        string pinB = _store.States["p"].Maps.Single(m => m.CName == "s0_table_b").Pin;
        _kernel.Remove(pinB);

        _deployer.Apply(Pipeline(2, [1, 3]));

        // A fresh selector (0) over a reused first copy would have put packets on [1, 2]: everything is fresh instead.
        Assert.Equal(0u, Bank);
        Assert.Equal(Keys(1, 3), CopyA.Entries.Keys);
        Assert.Equal(Keys(1, 3), CopyB.Entries.Keys);
    }

    [Fact]
    public void Names_the_copies_and_the_selector_take_are_refused()
    {
        Assert.Contains("second copy", Assert.Single(StageMap.ValidateSet([Table, Plain with { Name = "table_b" }])));
        Assert.Contains("bank selector", Assert.Single(StageMap.ValidateSet([Table, Plain with { Name = "bank" }])));
        Assert.Empty(StageMap.ValidateSet([Plain, Plain with { Name = "bank" }]));
        Assert.Contains("only a Config map", Assert.Single(StageMap.Validate(Table with { Contents = MapContents.State })));
        Assert.Contains("at most 9", Assert.Single(StageMap.Validate(Table with { Name = "abcdefghij" })));
    }
}
