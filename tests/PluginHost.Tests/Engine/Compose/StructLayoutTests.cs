using System.Net;
using System.Net.NetworkInformation;
using PluginHost.Compose;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Engine.Compose;

[Trait("Category", "Unit")]
public sealed class StructLayoutTests
{
    private static StructLayout Layout(params (string Name, FieldType Type)[] fields) =>
        StructLayout.Compute("t", fields.Select(f => new Field(f.Name, f.Type)).ToList());

    private static (int Offset, int Size)[] Offsets(StructLayout layout) => layout.Fields.Select(f => (f.Offset, f.Size)).ToArray();

    [Fact]
    public void U8ThenU32ThenU64IsNaturallyAligned()
    {
        var layout = Layout(("a", FieldType.U8), ("b", FieldType.U32), ("c", FieldType.U64));

        Assert.Equal([(0, 1), (4, 4), (8, 8)], Offsets(layout));
        Assert.Equal(16, layout.Size);
    }

    // An IPv6 field from numbers: two halves, each a big-endian 64-bit number.
    [Fact]
    public void AnIpv6FieldTakesTwoNumbersAndRefusesOne()
    {
        var layout = Layout(("len", FieldType.U32), ("addr", FieldType.Ipv6));
        var bytes = new byte[layout.Size];

        layout.EncodeNumbers(layout.NumberFields(["len", "addr.hi", "addr.lo"]), [64, 0x20010db800000000, 1], bytes);

        Assert.Equal("4000000020010DB8000000000000000000000001", Convert.ToHexString(bytes));
        Assert.Contains("an IPv6 field takes two numbers, addr.hi and addr.lo",
            Assert.Throws<FormatException>(() => layout.NumberFields(["addr"])).Message);
        Assert.Contains("no field 'len.hi'", Assert.Throws<FormatException>(() => layout.NumberFields(["len.hi"])).Message);
    }

    [Fact]
    public void ByteArraysHaveNoAlignmentButTheStructIsPaddedToItsWidestField()
    {
        var layout = Layout(("a", FieldType.U8), ("b", FieldType.U64), ("m", FieldType.Mac), ("v6", FieldType.Ipv6), ("port", FieldType.Be16));

        Assert.Equal([(0, 1), (8, 8), (16, 6), (22, 16), (38, 2)], Offsets(layout));
        Assert.Equal(40, layout.Size);
    }

    [Fact]
    public void MixedSmallFieldsPackIntoTheirNaturalSlots()
    {
        var layout = Layout(("p", FieldType.Be16), ("x", FieldType.U8), ("ip", FieldType.Ipv4), ("y", FieldType.U16),
            ("m", FieldType.Mac), ("z", FieldType.U64));

        Assert.Equal([(0, 2), (2, 1), (4, 4), (8, 2), (10, 6), (16, 8)], Offsets(layout));
        Assert.Equal(24, layout.Size);
    }

    [Theory]
    [InlineData(FieldType.U8, 1)]
    [InlineData(FieldType.U16, 2)]
    [InlineData(FieldType.Be16, 2)]
    [InlineData(FieldType.U32, 4)]
    [InlineData(FieldType.Be32, 4)]
    [InlineData(FieldType.Ipv4, 4)]
    [InlineData(FieldType.U64, 8)]
    [InlineData(FieldType.Mac, 6)]
    [InlineData(FieldType.Ipv6, 16)]
    public void SingleFieldStructHasTheFieldsSize(FieldType type, int size)
    {
        Assert.Equal(size, Layout(("f", type)).Size);
    }

    [Fact]
    public void TrailingPaddingRoundsUpToTheAlignment()
    {
        Assert.Equal(8, Layout(("a", FieldType.U32), ("b", FieldType.U8)).Size);
        Assert.Equal(4, Layout(("a", FieldType.U16), ("b", FieldType.U8)).Size);
        Assert.Equal(8, Layout(("m", FieldType.Mac), ("b", FieldType.U16)).Size);
        Assert.Equal(24, Layout(("v6", FieldType.Ipv6), ("x", FieldType.U64)).Size);
    }

    [Fact]
    public void ToCDeclaresEveryFieldAndAssertsEveryOffset()
    {
        string c = Layout(("a", FieldType.U8), ("b", FieldType.U64), ("m", FieldType.Mac), ("v6", FieldType.Ipv6), ("port", FieldType.Be16)).ToC();

        Assert.Contains("struct t {\n\t__u8 a;\n\t__u64 b;\n\t__u8 m[6];\n\t__u8 v6[16];\n\t__be16 port;\n};\n", c);
        Assert.Contains("_Static_assert(__builtin_offsetof(struct t, b) == 8,", c);
        Assert.Contains("_Static_assert(__builtin_offsetof(struct t, port) == 38,", c);
        Assert.Contains("_Static_assert(sizeof(struct t) == 40,", c);
        Assert.Equal(6, c.Split('\n').Count(l => l.StartsWith("_Static_assert", StringComparison.Ordinal)));
    }

    [Fact]
    public void EncodeWritesTheExactBytesAndDecodeReadsThemBack()
    {
        var layout = Layout(("p", FieldType.Be16), ("x", FieldType.U8), ("ip", FieldType.Ipv4), ("y", FieldType.U16),
            ("m", FieldType.Mac), ("z", FieldType.U64));
        var values = new Dictionary<string, object>
        {
            ["p"] = 0x1234,
            ["x"] = (byte)0xab,
            ["ip"] = IPAddress.Parse("1.2.3.4"),
            ["y"] = (ushort)0x0102,
            ["m"] = PhysicalAddress.Parse("02-00-5E-10-20-30"),
            ["z"] = ulong.MaxValue - 1,
        };

        byte[] bytes = layout.Encode(values);

        Assert.Equal(
            [0x12, 0x34, 0xab, 0, 1, 2, 3, 4, 0x02, 0x01, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            bytes);
        var decoded = layout.Decode(bytes);
        Assert.Equal(0x1234ul, decoded["p"]);
        Assert.Equal(0xabul, decoded["x"]);
        Assert.Equal(IPAddress.Parse("1.2.3.4"), decoded["ip"]);
        Assert.Equal(0x0102ul, decoded["y"]);
        Assert.Equal(PhysicalAddress.Parse("02-00-5E-10-20-30"), decoded["m"]);
        Assert.Equal(ulong.MaxValue - 1, decoded["z"]);
    }

    [Fact]
    public void Ipv6AndBe32RoundTripAndAbsentFieldsAreZero()
    {
        var layout = Layout(("v6", FieldType.Ipv6), ("n", FieldType.Be32), ("u", FieldType.U32), ("pad", FieldType.U64));

        byte[] bytes = layout.Encode(new Dictionary<string, object> { ["v6"] = IPAddress.Parse("2001:db8::1"), ["n"] = 0x0a000001u });

        Assert.Equal(32, bytes.Length);
        Assert.Equal(IPAddress.Parse("2001:db8::1").GetAddressBytes(), bytes[..16]);
        Assert.Equal([0x0a, 0, 0, 1], bytes[16..20]);
        Assert.All(bytes[20..], b => Assert.Equal(0, b));
        var decoded = layout.Decode(bytes);
        Assert.Equal(IPAddress.Parse("2001:db8::1"), decoded["v6"]);
        Assert.Equal(0x0a000001ul, decoded["n"]);
        Assert.Equal(0ul, decoded["u"]);
    }

    [Fact]
    public void EncodeAcceptsEveryIntegralTypeWithinRange()
    {
        var layout = Layout(("a", FieldType.U8), ("b", FieldType.U16), ("c", FieldType.U32), ("d", FieldType.U64));

        byte[] bytes = layout.Encode(new Dictionary<string, object> { ["a"] = 255L, ["b"] = (short)7, ["c"] = uint.MaxValue, ["d"] = long.MaxValue });

        var decoded = layout.Decode(bytes);
        Assert.Equal(255ul, decoded["a"]);
        Assert.Equal(7ul, decoded["b"]);
        Assert.Equal((ulong)uint.MaxValue, decoded["c"]);
        Assert.Equal((ulong)long.MaxValue, decoded["d"]);
    }

    public static TheoryData<FieldType, object, string> WrongValues => new()
    {
        { FieldType.Ipv4, "1.2.3.4", "IPv4" },
        { FieldType.Ipv4, IPAddress.Parse("::1"), "IPv4" },
        { FieldType.Ipv4, 0x01020304, "IPv4" },
        { FieldType.Ipv6, IPAddress.Parse("1.2.3.4"), "IPv6" },
        { FieldType.Mac, new PhysicalAddress([1, 2, 3, 4, 5, 6, 7, 8]), "MAC" },
        { FieldType.Mac, "02:00:00:00:00:01", "MAC" },
        { FieldType.U32, -1, "non-negative integer" },
        { FieldType.U32, "5", "non-negative integer" },
        { FieldType.U32, 3.0, "non-negative integer" },
        { FieldType.U32, true, "non-negative integer" },
        { FieldType.U32, IPAddress.Parse("1.2.3.4"), "non-negative integer" },
        { FieldType.U8, 256, "does not fit in 8 bits" },
        { FieldType.U16, 65536, "does not fit in 16 bits" },
        { FieldType.Be16, 70000u, "does not fit in 16 bits" },
        { FieldType.U32, (ulong)uint.MaxValue + 1, "does not fit in 32 bits" },
        { FieldType.Be32, 1L << 32, "does not fit in 32 bits" },
    };

    [Theory]
    [MemberData(nameof(WrongValues))]
    public void EncodeRefusesWrongTypesAndValuesThatDoNotFit(FieldType type, object value, string reason)
    {
        var layout = StructLayout.Compute("s0_routes_key", [new Field("prefixlen", FieldType.U32), new Field("f", type)]);

        var e = Assert.Throws<FormatException>(() => layout.Encode(new Dictionary<string, object> { ["f"] = value }));

        Assert.Contains("s0_routes_key.f", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void EncodeRefusesAnUnknownFieldNamingTheKnownOnes()
    {
        var layout = StructLayout.Compute("s0_routes_key", [new Field("prefixlen", FieldType.U32), new Field("addr", FieldType.Ipv4)]);

        var e = Assert.Throws<FormatException>(() => layout.Encode(new Dictionary<string, object> { ["address"] = IPAddress.Loopback }));

        Assert.Contains("'address'", e.Message);
        Assert.Contains("prefixlen, addr", e.Message);
    }
}
