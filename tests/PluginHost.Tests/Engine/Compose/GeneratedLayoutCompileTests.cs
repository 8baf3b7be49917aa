using PluginHost.Compose;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Engine.Compose;

/// <summary>
/// The C structs the host generates carry _Static_asserts of the C# layout; clang compiling them for
/// the BPF target proves that both sides agree on every offset and size.
/// </summary>
[Trait("Category", "Unit")]
public sealed class GeneratedLayoutCompileTests
{
    private static readonly MapSchema[] Schemas =
    [
        new("routes", MapKind.LpmTrie,
            [new("prefixlen", FieldType.U32), new("addr", FieldType.Ipv4)],
            [new("ifindex", FieldType.U32), new("nexthop", FieldType.Ipv4)], 1 << 20),
        new("awkward", MapKind.Hash,
            [new("a", FieldType.U8), new("b", FieldType.U64), new("m", FieldType.Mac), new("v6", FieldType.Ipv6), new("port", FieldType.Be16)],
            [new("mac", FieldType.Mac), new("n", FieldType.U32), new("f", FieldType.U8), new("big", FieldType.U64)], 64),
        new("flows", MapKind.LruHash,
            [new("src", FieldType.Ipv6), new("dst", FieldType.Ipv6), new("sport", FieldType.Be16), new("dport", FieldType.Be16), new("proto", FieldType.U8)],
            [new("seen", FieldType.U64), new("backend", FieldType.U16), new("gw", FieldType.Ipv4), new("hw", FieldType.Mac)], 4096),
        new("cfg", MapKind.Array,
            [new("index", FieldType.U32)],
            [new("x", FieldType.U8), new("y", FieldType.Be16), new("z", FieldType.Be32), new("w", FieldType.U64), new("tail", FieldType.U8)], 4),
        new("stats", MapKind.PerCpuArray,
            [new("index", FieldType.U32)],
            [new("packets", FieldType.U64), new("bytes", FieldType.U64)], 8),
    ];

    private static string Source(IEnumerable<StageMap> maps) =>
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\n"
        + string.Concat(maps.Select(m => m.ToC()))
        + "char LICENSE[] SEC(\"license\") = \"GPL\";\n";

    private static List<StageMap> Maps() => Schemas.Select((s, i) => new StageMap(i, $"T.{i}", s)).ToList();

    [Fact]
    public void SchemasAreValidAndLayoutsAreTheExpectedOnes()
    {
        Assert.All(Schemas, s => Assert.Empty(StageMap.Validate(s)));
        var awkward = Maps()[1];
        Assert.Equal([0, 8, 16, 22, 38], awkward.Key.Fields.Select(f => f.Offset));
        Assert.Equal(40, awkward.Key.Size);
        Assert.Equal([0, 8, 12, 16], awkward.Value.Fields.Select(f => f.Offset));
        Assert.Equal(24, awkward.Value.Size);
        var flows = Maps()[2];
        Assert.Equal([0, 16, 32, 34, 36], flows.Key.Fields.Select(f => f.Offset));
        Assert.Equal(38, flows.Key.Size);
        Assert.Equal([0, 8, 12, 16], flows.Value.Fields.Select(f => f.Offset));
        Assert.Equal(24, flows.Value.Size);
    }

    [CompilerFact]
    public void ClangAgreesWithEveryGeneratedLayout()
    {
        string source = Source(Maps());

        var (exitCode, output) = Clang.CompileBpf(source, "-Wall", "-Werror");

        Assert.True(exitCode == 0, $"clang failed:\n{output}\n--- source ---\n{source}");
    }

    [CompilerFact]
    public void ClangRefusesATamperedOffset()
    {
        string source = Source(Maps());
        const string good = "__builtin_offsetof(struct s1_awkward_key, b) == 8,";
        Assert.Contains(good, source);
        string tampered = source.Replace(good, "__builtin_offsetof(struct s1_awkward_key, b) == 4,");

        var (exitCode, output) = Clang.CompileBpf(tampered);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("layout of s1_awkward_key.b", output);
    }

    [CompilerFact]
    public void ClangRefusesATamperedSize()
    {
        string source = Source(Maps());
        const string good = "sizeof(struct s2_flows_key) == 38,";
        Assert.Contains(good, source);

        var (exitCode, output) = Clang.CompileBpf(source.Replace(good, "sizeof(struct s2_flows_key) == 40,"));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("size of s2_flows_key", output);
    }
}
