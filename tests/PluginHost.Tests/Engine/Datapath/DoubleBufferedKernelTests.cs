using Microsoft.Extensions.Logging.Abstractions;
using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Kernel;
using PluginHost.Pipelines;
using PluginHost.Tests.Support;
using PluginHost.TestSupport;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>Double-buffered maps on the real kernel: the verifier takes a template that picks its copies by the selector,
/// and a change of entries reaches packets by one flip, in place (no new generation).</summary>
[Trait("Category", "Kernel")]
public sealed class DoubleBufferedKernelTests : IDisposable
{
    private const int TcActShot = 2;
    private const int TcxNext = -1;

    private static readonly MapSchema Table = new("table", MapKind.Array, [new("index", FieldType.U32)], [new("drop", FieldType.U32)], 256) { DoubleBuffered = true };

    // Drops a packet whose TTL's table entry says so; reads the selector once and walks one copy.
    private const string Template = """
        static __always_inline int {{ stage.function }}_in(struct __sk_buff *skb, struct ph_meta *meta, void *table)
        {
        	struct iphdr *ip = ph_ipv4(skb, meta);
        	__u32 index;
        	{{ maps.table.value_type }} *entry;

        	if (!ip)
        		return ph_next();
        	index = ip->ttl;
        	entry = bpf_map_lookup_elem(table, &index);
        	return entry && entry->drop ? ph_drop() : ph_next();
        }

        static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta)
        {
        	if ({{ stage.bank }})
        		return {{ stage.function }}_in(skb, meta, &{{ maps.table.name_b }});
        	return {{ stage.function }}_in(skb, meta, &{{ maps.table.name }});
        }

        """;

    private readonly KernelChain _net = new();
    private readonly string _bpfRoot = $"/sys/fs/bpf/pluginhost-test-{Guid.NewGuid():N}";
    private readonly string _work = Directory.CreateTempSubdirectory("pluginhost-banks-").FullName;

    public void Dispose()
    {
        if (Directory.Exists(_bpfRoot))
            Directory.Delete(_bpfRoot, recursive: true);
        Directory.Delete(_work, recursive: true);
        _net.Dispose();
    }

    private PlannedPipeline Pipeline(params uint[] droppedTtls)
    {
        var entries = new PackedEntries(4, 4);
        foreach (uint ttl in droppedTtls)
            entries.Add(BitConverter.GetBytes(ttl), BitConverter.GetBytes(1u));
        var stage = new StagePlan("Banks", new StageTemplate("banks.c.sbn", Template), [Table], new Dictionary<string, long>());
        var config = new PipelineConfig("p", KernelChain.Input, Direction.Ingress, _net.Namespace.Name, [],
            new SettingsNode("pipelines[p]", 1, SettingsKind.Mapping));
        return new PlannedPipeline(config, _net.Ifindex(KernelChain.Input), new PipelinePlan("p", Direction.Ingress, [stage]),
            [new Dictionary<string, PackedEntries> { ["table"] = entries }]);
    }

    private int Verdict(PipelineState state, byte ttl)
    {
        using var entry = BpfProgram.OpenPinned(state.EntryPin);
        return entry.TestRun(Packets.Ipv4Udp("192.0.2.1", "198.51.100.1", ttl: ttl)).ReturnValue;
    }

    private static uint Bank(PipelineState state)
    {
        using var selector = BpfMap.OpenPinned(state.Maps.Single(m => m.CName == "s0_bank").Pin);
        Span<byte> value = stackalloc byte[4];
        Assert.True(selector.TryLookup(BitConverter.GetBytes(0u), value));
        return BitConverter.ToUInt32(value);
    }

    [KernelFact]
    public void AChangeReachesPacketsByOneFlipInPlace()
    {
        var deployer = new PipelineDeployer(_bpfRoot, _work, new ClangCompiler(Path.Combine(Repo.Root, "artifacts", "test-cache")),
            TimeSpan.Zero, NullLogger.Instance);
        var first = deployer.Apply(Pipeline(7));
        var state = PipelineState.Load(_work, "p")!;
        Assert.Equal((TcActShot, TcxNext), (Verdict(state, 7), Verdict(state, 9)));
        Assert.Equal(0u, Bank(state));

        var second = deployer.Apply(Pipeline(9));

        Assert.Equal(ApplyKind.MapsUpdated, second.Kind);
        Assert.Equal(first.ProgramId, second.ProgramId);
        Assert.Equal(2, second.EntriesChanged);
        Assert.Equal(1u, Bank(state));
        Assert.Equal((TcxNext, TcActShot), (Verdict(state, 7), Verdict(state, 9)));

        var third = deployer.Apply(Pipeline(7, 9));
        Assert.Equal(0u, Bank(state));
        Assert.Equal((TcActShot, TcActShot), (Verdict(state, 7), Verdict(state, 9)));
        Assert.Equal(1, third.EntriesChanged);
    }
}
