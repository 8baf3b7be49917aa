using PluginHost.Compose;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Engine.Compose;

[Trait("Category", "Unit")]
public sealed class StageMapTests
{
    private static readonly Field[] RoutesKey = [new("prefixlen", FieldType.U32), new("addr", FieldType.Ipv4)];
    private static readonly Field[] RoutesValue = [new("ifindex", FieldType.U32), new("nexthop", FieldType.Ipv4)];

    private static MapSchema Routes(string name = "routes", MapKind kind = MapKind.LpmTrie, Field[]? key = null, Field[]? value = null, uint max = 1024) =>
        new(name, kind, key ?? RoutesKey, value ?? RoutesValue, max);

    [Fact]
    public void ValidSchemasHaveNoProblems()
    {
        Assert.Empty(StageMap.Validate(Routes()));
        Assert.Empty(StageMap.Validate(Routes("abcdefghijk")));
        Assert.Empty(StageMap.Validate(Routes("_x", MapKind.Hash, key: [new("a", FieldType.Mac)])));
        Assert.Empty(StageMap.Validate(Routes("cfg", MapKind.Array, key: [new("index", FieldType.U32)])));
        Assert.Empty(StageMap.Validate(Routes("stats", MapKind.PerCpuArray, key: [new("index", FieldType.U32)])));
    }

    [Theory]
    [InlineData("addr", FieldType.Ipv4)]
    [InlineData("prefix_len", FieldType.U32)]
    public void LpmKeyMustStartWithPrefixlen(string first, FieldType type)
    {
        var problem = Assert.Single(StageMap.Validate(Routes(key: [new(first, type), new("addr2", FieldType.Ipv4)])));

        Assert.StartsWith("map 'routes': ", problem);
        Assert.Contains("prefixlen", problem);
    }

    [Fact]
    public void LpmPrefixlenMustBeU32AndFollowedByData()
    {
        Assert.Single(StageMap.Validate(Routes(key: [new("prefixlen", FieldType.U64), new("addr", FieldType.Ipv4)])));
        Assert.Single(StageMap.Validate(Routes(key: [new("prefixlen", FieldType.U32)])));
    }

    // The trie matches prefixlen bits of the bytes right after prefixlen: padding there would be matched too.
    [Fact]
    public void LpmKeyWithPaddingAfterPrefixlenIsRefused()
    {
        Assert.NotEmpty(StageMap.Validate(Routes(key: [new("prefixlen", FieldType.U32), new("cookie", FieldType.U64)])));
    }

    [Theory]
    [InlineData("1routes")]
    [InlineData("my-map")]
    [InlineData("my map")]
    [InlineData("")]
    [InlineData("abcdefghijkl")] // 12 characters: s0_ + name would not fit the kernel's 15
    public void BadMapNamesAreRefused(string name)
    {
        var problem = Assert.Single(StageMap.Validate(Routes(name)));

        Assert.Contains($"map '{name}'", problem);
        Assert.Contains($"at most {StageMap.MaxNameLength} characters", problem);
    }

    [Fact]
    public void LongestAllowedNameStillFitsTheKernelsObjectName()
    {
        var map = new StageMap(99, "T.0", Routes(new string('x', StageMap.MaxNameLength)));

        Assert.True(map.CName.Length <= 15, map.CName);
    }

    [Fact]
    public void BadFieldNamesAreRefused()
    {
        var problems = StageMap.Validate(Routes(kind: MapKind.Hash, key: [new("src addr", FieldType.Ipv4)], value: [new("2x", FieldType.U8), new("ok", FieldType.U8)])).ToList();

        Assert.Equal(["map 'routes': key field 'src addr' is not a C identifier", "map 'routes': value field '2x' is not a C identifier"], problems);
    }

    [Fact]
    public void DuplicateFieldsAreRefusedInKeyAndValue()
    {
        var problems = StageMap.Validate(Routes(kind: MapKind.Hash,
            key: [new("a", FieldType.U32), new("a", FieldType.U8)],
            value: [new("v", FieldType.U32), new("w", FieldType.U8), new("v", FieldType.U64)])).ToList();

        Assert.Equal(2, problems.Count);
        Assert.Contains("key field 'a' appears twice", problems[0]);
        Assert.Contains("value field 'v' appears twice", problems[1]);
    }

    [Fact]
    public void EmptyStructsZeroEntriesAndBadArrayKeysAreRefused()
    {
        Assert.Contains("at least one field", Assert.Single(StageMap.Validate(Routes(kind: MapKind.Hash, key: []))));
        Assert.Contains("at least one field", Assert.Single(StageMap.Validate(Routes(value: []))));
        Assert.Contains("at least 1", Assert.Single(StageMap.Validate(Routes(max: 0))));
        Assert.Contains("single U32", Assert.Single(StageMap.Validate(Routes(kind: MapKind.Array, key: [new("i", FieldType.U64)]))));
        Assert.Contains("single U32", Assert.Single(StageMap.Validate(Routes(kind: MapKind.PerCpuArray))));
    }

    [Fact]
    public void EveryProblemIsReported()
    {
        var problems = StageMap.Validate(new MapSchema("bad-name", MapKind.LpmTrie,
            [new("addr", FieldType.Ipv4), new("addr", FieldType.Ipv4)], [new("x y", FieldType.U8)], 0)).ToList();

        Assert.Equal(5, problems.Count);
        Assert.All(problems, p => Assert.StartsWith("map 'bad-name': ", p));
    }

    [Fact]
    public void ToCNamesTheMapPerStageWithBtfTypes()
    {
        var map = new StageMap(3, "T.0", Routes(max: 1 << 20));

        string c = map.ToC();

        Assert.Equal("s3_routes", map.CName);
        Assert.Equal("s3_routes_key", map.Key.CName);
        Assert.Equal("s3_routes_value", map.Value.CName);
        Assert.Contains("struct s3_routes_key {\n\t__u32 prefixlen;\n\t__be32 addr;\n};", c);
        Assert.Contains("\t__uint(type, BPF_MAP_TYPE_LPM_TRIE);\n", c);
        Assert.Contains("\t__uint(max_entries, 1048576);\n", c);
        Assert.Contains("\t__type(key, struct s3_routes_key);\n", c);
        Assert.Contains("\t__type(value, struct s3_routes_value);\n", c);
        Assert.Contains("\t__uint(map_flags, BPF_F_NO_PREALLOC);\n", c);
        Assert.EndsWith("} s3_routes SEC(\".maps\");\n", c);
    }

    [Theory]
    [InlineData(MapKind.Hash, "BPF_MAP_TYPE_HASH")]
    [InlineData(MapKind.LruHash, "BPF_MAP_TYPE_LRU_HASH")]
    [InlineData(MapKind.Array, "BPF_MAP_TYPE_ARRAY")]
    [InlineData(MapKind.PerCpuArray, "BPF_MAP_TYPE_PERCPU_ARRAY")]
    public void OnlyTheLpmTrieAsksForNoPrealloc(MapKind kind, string type)
    {
        string c = new StageMap(0, "T.0", Routes("m", kind, key: [new("k", FieldType.U32)])).ToC();

        Assert.Contains($"__uint(type, {type});", c);
        Assert.DoesNotContain("BPF_F_NO_PREALLOC", c);
    }
}
