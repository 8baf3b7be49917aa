using PluginHost.TestSupport;
using System.Text.RegularExpressions;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Compose;

[Trait("Category", "Unit")]
public sealed class ChainComposerTests : IClassFixture<SourcePolicyFixture>, IDisposable
{
    private const string CounterTemplateName = "counter.c.sbn";

    // An inline plugin: counts packets per L4 protocol, drops one protocol chosen by a constant.
    private const string CounterTemplate = """
        // Counter: per-protocol packet counts.
        static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta)
        {
        	{{ maps.seen.key_type }} key = { .proto = meta->l4_proto };
        	{{ maps.seen.value_type }} *seen;

        	seen = bpf_map_lookup_elem(&{{ maps.seen.name }}, &key);
        	if (seen)
        		__sync_fetch_and_add(&seen->packets, 1);
        	if (meta->l4_proto == {{ constants.block_proto }})
        		return ph_drop();
        	return ph_next();
        }

        """;

    private static readonly MapSchema SeenMap = new("seen", MapKind.Hash, [new("proto", FieldType.U8)], [new("packets", FieldType.U64)], 256);

    private readonly StagePlan _sourcePolicy;
    private readonly string _cache = Path.Combine(Path.GetTempPath(), "ph-compose-" + Guid.NewGuid().ToString("N"));

    public ChainComposerTests(SourcePolicyFixture fixture)
    {
        // Copied out of the plugin, as the planner does.
        var plugin = fixture.Plugin;
        _sourcePolicy = new StagePlan(plugin.Name, plugin.Template with { }, plugin.Maps.ToList(), new Dictionary<string, long>());
    }

    public void Dispose()
    {
        if (Directory.Exists(_cache))
            Directory.Delete(_cache, recursive: true);
    }

    private static StagePlan Counter(long blockProto = 132) =>
        new("Counter", new StageTemplate(CounterTemplateName, CounterTemplate), [SeenMap], new Dictionary<string, long> { ["block_proto"] = blockProto });

    private PipelinePlan TwoSourcePolicies(Direction direction = Direction.Ingress) =>
        new("edge", direction, [_sourcePolicy, _sourcePolicy]);

    /// <summary>The text of one program or stage glue function, from its definition to <paramref name="end"/>.</summary>
    private static string Program(string source, string name, string end = "\n}\n")
    {
        int start = source.IndexOf($"int {name}(struct __sk_buff *skb", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no program {name}");
        int stop = source.IndexOf(end, start, StringComparison.Ordinal);
        return stop < 0 ? source[start..] : source[start..stop];
    }

    private static int TemplateLine(string hostTemplate, string text) =>
        Array.FindIndex(File.ReadAllLines(Path.Combine(Repo.Root, "bpf-templates", hostTemplate)), l => l.Contains(text, StringComparison.Ordinal)) + 1;

    [Fact]
    public void TwoStagesBecomeTwoTcProgramsJoinedByAConstantTailCall()
    {
        var spec = ChainComposer.Compose(TwoSourcePolicies());
        string source = spec.Source;

        // The first stage runs inside the entry program; every later stage is a program of its own.
        Assert.Equal(2, Regex.Matches(source, Regex.Escape("SEC(\"tc\")")).Count);
        Assert.Contains("SEC(\"tc\")\nint ph_entry(struct __sk_buff *skb)", source);
        Assert.Contains("SEC(\"tc\")\nint ph_s1_sourcepolicy(struct __sk_buff *skb)", source);
        Assert.Contains("return ph_s0_stage(skb, &meta);", Program(source, "ph_entry"));
        Assert.Contains("return ph_s1_stage(skb, &meta);", Program(source, "ph_s1_sourcepolicy"));

        // Every tail call uses a literal index: stage 0 jumps to slot 1, the last stage nowhere.
        var tailCalls = Regex.Matches(source, @"bpf_tail_call\(([^)]*)\)").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(["skb, &ph_chain, 1"], tailCalls);
        Assert.Contains("bpf_tail_call(skb, &ph_chain, 1);", Program(source, "ph_s0_stage"));
        Assert.DoesNotContain("bpf_tail_call", Program(source, "ph_s1_stage"));
        Assert.DoesNotContain("bpf_tail_call", Program(source, "ph_entry"));

        Assert.Contains("} s0_routes SEC(\".maps\");", source);
        Assert.Contains("} s1_routes SEC(\".maps\");", source);
        Assert.Contains("bpf_map_lookup_elem(&s0_routes, &key)", source);
        Assert.Contains("bpf_map_lookup_elem(&s1_routes, &key)", source);
        Assert.Contains("static __always_inline int s0_run(struct __sk_buff *skb, struct ph_meta *meta)", source);
        Assert.Contains("static __always_inline int s1_run(struct __sk_buff *skb, struct ph_meta *meta)", source);
        Assert.Contains("verdict = s1_run(skb, meta);", Program(source, "ph_s1_stage"));
        Assert.Contains("#define PH_INGRESS 1\n", source);
        Assert.Contains("const volatile __u32 ph_generation SEC(\".rodata.ph\") = 0;", source);
        Assert.Contains("meta.generation = ph_generation;", source);
        Assert.DoesNotContain("{{", source);
        Assert.DoesNotContain('\u0001', source);
    }

    [Fact]
    public void SpecDescribesStagesAndMaps()
    {
        var spec = ChainComposer.Compose(TwoSourcePolicies(Direction.Egress));

        Assert.Equal("edge", spec.PipelineName);
        Assert.Equal(Direction.Egress, spec.Direction);
        Assert.Equal(3, spec.StatsRows);
        Assert.Collection(spec.Stages,
            s => Assert.Equal((0, 1, "SourcePolicy", "ph_entry", false, "s0_routes"), (s.Index, s.Row, s.PluginName, s.ProgramName, s.HasOwnProgram, Assert.Single(s.Maps).CName)),
            s => Assert.Equal((1, 2, "SourcePolicy", "ph_s1_sourcepolicy", true, "s1_routes"), (s.Index, s.Row, s.PluginName, s.ProgramName, s.HasOwnProgram, Assert.Single(s.Maps).CName)));
        Assert.Contains("#define PH_INGRESS 0\n", spec.Source);
        Assert.Contains("#define PH_STAGE_ROW 1\n", spec.Source);
        Assert.Contains("#define PH_STAGE_ROW 2\n", spec.Source);
        int chainEnd = spec.Source.IndexOf("} ph_chain SEC(\".maps\");", StringComparison.Ordinal);
        string chainMap = spec.Source[spec.Source.LastIndexOf("struct {", chainEnd, StringComparison.Ordinal)..chainEnd];
        Assert.Contains("BPF_MAP_TYPE_PROG_ARRAY", chainMap);
        Assert.Contains("__uint(max_entries, 2);", chainMap);
    }

    [Fact]
    public void CompositionIsDeterministic()
    {
        var plan = new PipelinePlan("edge", Direction.Ingress, [_sourcePolicy, Counter(), _sourcePolicy]);

        string first = ChainComposer.Compose(plan).Source;
        string second = ChainComposer.Compose(plan with { Stages = plan.Stages.ToList() }).Source;

        Assert.Equal(first, second);
        // The generation is set at load time, not compiled in (so a rebuild of the same chain hits the cache).
        Assert.DoesNotContain("generation = ", first.Replace("meta.generation = ph_generation", ""));
        Assert.NotEqual(first, ChainComposer.Compose(plan with { Direction = Direction.Egress }).Source);
    }

    [Fact]
    public void AKeptCompositionIsReusedOnlyForTheSameInputs()
    {
        var plan = new PipelinePlan("kept", Direction.Ingress, [Counter(17)]);

        var first = ChainComposer.Compose(plan);

        Assert.Same(first, ChainComposer.Compose(plan with { Stages = [Counter(17)] })); // equal inputs, new objects
        // Each input that composition reads gives another chain: a constant, a map's capacity, the template, the hook.
        Assert.Contains("== 6)", ChainComposer.Compose(plan with { Stages = [Counter(6)] }).Source);
        var bigger = Counter(17) with { Maps = Counter(17).Maps.Select(m => m with { MaxEntries = m.MaxEntries * 2 }).ToList() };
        Assert.NotEqual(first.Source, ChainComposer.Compose(plan with { Stages = [bigger] }).Source);
        var edited = Counter(17) with { Template = Counter(17).Template with { Text = Counter(17).Template.Text + "\n// edited\n" } };
        Assert.Contains("// edited", ChainComposer.Compose(plan with { Stages = [edited] }).Source);
        Assert.NotEqual(first.Source, ChainComposer.Compose(plan with { Direction = Direction.Egress }).Source);
    }

    [Fact]
    public void ConstantsReachTheFragmentAsNumbers()
    {
        string source = ChainComposer.Compose(new PipelinePlan("p", Direction.Ingress, [Counter(132)])).Source;

        Assert.Contains("if (meta->l4_proto == 132)", source);
        Assert.Contains("struct s0_seen_key {\n\t__u8 proto;\n};", source);
        Assert.Contains("\tstruct s0_seen_key key = { .proto = meta->l4_proto };", source);
        Assert.DoesNotContain("bpf_tail_call(skb, &ph_chain, 1)", source);
    }

    [Fact]
    public void FragmentAndHostLinesMapBackToTheirTemplates()
    {
        var spec = ChainComposer.Compose(new PipelinePlan("p", Direction.Ingress, [_sourcePolicy, Counter()]));
        var lines = TemplateRendererTests.Attribute(spec.Source);

        (string? File, int Line) Where(string text)
        {
            var (_, file, line) = Assert.Single(lines, l => l.Text == text);
            return (file, line);
        }

        Assert.Equal(("Counter/" + CounterTemplateName, 7), Where("\tseen = bpf_map_lookup_elem(&s1_seen, &key);"));
        Assert.Equal(("Counter/" + CounterTemplateName, 10), Where("\tif (meta->l4_proto == 132)"));
        Assert.Equal(("bpf-templates/stage.c.sbn", TemplateLine("stage.c.sbn", "int {{ stage.program }}(")), Where("int ph_s1_counter(struct __sk_buff *skb)"));
        Assert.Equal(("bpf-templates/stage.c.sbn", TemplateLine("stage.c.sbn", "int {{ stage.glue }}(")), Where("static __always_inline int ph_s0_stage(struct __sk_buff *skb, struct ph_meta *meta)"));
        Assert.Equal(("bpf-templates/entry.c.sbn", TemplateLine("entry.c.sbn", "int ph_entry(")), Where("int ph_entry(struct __sk_buff *skb)"));
        Assert.Contains(lines, l => l.File == "SourcePolicy/source_policy.c.sbn");
    }

    [Fact]
    public void AStageTemplateErrorNamesThePluginsFileAndLine()
    {
        var broken = new StagePlan("Broken", new StageTemplate("broken.c.sbn", "// ok\n// ok\nint {{ stage.functoin }};\n"), [SeenMap], new Dictionary<string, long>());

        var e = Assert.Throws<TemplateException>(() => ChainComposer.Compose(new PipelinePlan("p", Direction.Ingress, [_sourcePolicy, broken])));

        Assert.Equal("Broken/broken.c.sbn", e.File);
        Assert.Equal(3, e.Line);
    }

    [Fact]
    public void AnUndefinedConstantIsATemplateError()
    {
        var e = Assert.Throws<TemplateException>(() => ChainComposer.Compose(new PipelinePlan("p", Direction.Ingress,
            [Counter() with { Constants = new Dictionary<string, long>() }])));

        Assert.Equal("Counter/" + CounterTemplateName, e.File);
        Assert.Equal(10, e.Line);
    }

    // Plugin names come from plugin code; they end up in C identifiers (program names) and comments.
    [Fact]
    public void APluginNameThatIsNotAnIdentifierNeverReachesTheCSource()
    {
        var odd = Counter() with { PluginName = "Five-Tuple\n#error injected" };

        // At stage 1, where the name would make a program name (stage 0 runs in ph_entry).
        var e = Assert.Throws<ArgumentException>(() => ChainComposer.Compose(new PipelinePlan("p", Direction.Ingress, [Counter(), odd])));

        Assert.Contains("is not a C identifier", e.Message);
    }

    [CompilerFact]
    public void TwoSourcePolicyStagesCompile()
    {
        var spec = ChainComposer.Compose(TwoSourcePolicies());

        var result = new ClangCompiler(_cache).Compile(spec.Source, "unit");

        Assert.True(File.Exists(result.ObjectPath));
        Assert.False(result.Cached);
        Assert.True(new ClangCompiler(_cache).Compile(spec.Source, "unit").Cached);
    }

    [CompilerFact]
    public void MixedEgressChainCompiles()
    {
        var spec = ChainComposer.Compose(new PipelinePlan("mixed", Direction.Egress, [Counter(17), _sourcePolicy, Counter(6)]));

        Assert.True(File.Exists(new ClangCompiler(_cache).Compile(spec.Source, "unit").ObjectPath));
    }

    [CompilerFact]
    public void SingleStageChainCompiles()
    {
        var spec = ChainComposer.Compose(new PipelinePlan("one", Direction.Ingress, [_sourcePolicy]));

        Assert.DoesNotContain("bpf_tail_call", spec.Source);
        Assert.DoesNotContain("ph_s0_sourcepolicy", spec.Source);
        Assert.True(File.Exists(new ClangCompiler(_cache).Compile(spec.Source, "unit").ObjectPath));
    }

    [CompilerFact]
    public void ClangErrorsInAFragmentPointAtThePluginTemplate()
    {
        var broken = Counter() with { Template = new StageTemplate("typo.c.sbn", CounterTemplate.Replace("return ph_next();", "return ph_nxt();")) };
        var spec = ChainComposer.Compose(new PipelinePlan("p", Direction.Ingress, [broken]));

        var e = Assert.Throws<CompileException>(() => new ClangCompiler(_cache).Compile(spec.Source, "unit"));

        Assert.Contains("Counter/typo.c.sbn:12:", e.Output);
    }
}
