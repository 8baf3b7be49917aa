using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using PluginHost.Contract;

namespace PluginHost.Compose;

/// <summary>Where one field sits in a C struct.</summary>
public sealed record FieldLayout(Field Field, int Offset, int Size, int Align)
{
    public string CDeclaration => Field.Type switch
    {
        FieldType.U8 => $"__u8 {Field.Name}",
        FieldType.U16 => $"__u16 {Field.Name}",
        FieldType.U32 => $"__u32 {Field.Name}",
        FieldType.U64 => $"__u64 {Field.Name}",
        FieldType.Be16 => $"__be16 {Field.Name}",
        FieldType.Be32 or FieldType.Ipv4 => $"__be32 {Field.Name}",
        FieldType.Ipv6 => $"__u8 {Field.Name}[16]",
        FieldType.Mac => $"__u8 {Field.Name}[6]",
        _ => throw new ArgumentOutOfRangeException(nameof(Field)),
    };
}

/// <summary>
/// The C layout of a list of fields (natural alignment, as clang lays out a BPF struct), its C
/// definition, and the codec that turns field values into the exact bytes the kernel expects.
/// The generated C carries _Static_asserts of every offset, so a mismatch cannot compile.
/// </summary>
public sealed class StructLayout
{
    private readonly Dictionary<string, FieldLayout> _byName;

    private StructLayout(string cName, IReadOnlyList<FieldLayout> fields, int size)
    {
        CName = cName;
        Fields = fields;
        Size = size;
        _byName = fields.ToDictionary(f => f.Field.Name);
    }

    /// <summary>C struct tag, e.g. s0_routes_key.</summary>
    public string CName { get; }

    public IReadOnlyList<FieldLayout> Fields { get; }

    public int Size { get; }

    public static StructLayout Compute(string cName, IReadOnlyList<Field> fields)
    {
        var layouts = new List<FieldLayout>();
        int offset = 0, maxAlign = 1;
        foreach (var field in fields)
        {
            var (size, align) = SizeAndAlign(field.Type);
            offset = (offset + align - 1) / align * align;
            layouts.Add(new FieldLayout(field, offset, size, align));
            offset += size;
            maxAlign = Math.Max(maxAlign, align);
        }
        int total = (offset + maxAlign - 1) / maxAlign * maxAlign;
        return new StructLayout(cName, layouts, Math.Max(total, 1));
    }

    private static (int Size, int Align) SizeAndAlign(FieldType type) => type switch
    {
        FieldType.U8 => (1, 1),
        FieldType.U16 or FieldType.Be16 => (2, 2),
        FieldType.U32 or FieldType.Be32 or FieldType.Ipv4 => (4, 4),
        FieldType.U64 => (8, 8),
        FieldType.Ipv6 => (16, 1),
        FieldType.Mac => (6, 1),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>The struct definition followed by compile-time checks of its layout.</summary>
    public string ToC()
    {
        var sb = new StringBuilder();
        sb.Append("struct ").Append(CName).Append(" {\n");
        foreach (var f in Fields)
            sb.Append('\t').Append(f.CDeclaration).Append(";\n");
        sb.Append("};\n");
        foreach (var f in Fields)
            sb.Append($"_Static_assert(__builtin_offsetof(struct {CName}, {f.Field.Name}) == {f.Offset}, \"layout of {CName}.{f.Field.Name}\");\n");
        sb.Append($"_Static_assert(sizeof(struct {CName}) == {Size}, \"size of {CName}\");\n");
        return sb.ToString();
    }

    /// <summary>Encode values (by field name; absent fields are zero). Throws FormatException naming the field.</summary>
    public byte[] Encode(IReadOnlyDictionary<string, object> values)
    {
        var bytes = new byte[Size];
        EncodeInto(values, bytes);
        return bytes;
    }

    /// <summary>Encode into <paramref name="destination"/> (Size bytes, zeroed by the caller).</summary>
    public void EncodeInto(IReadOnlyDictionary<string, object> values, Span<byte> destination)
    {
        foreach (var (name, value) in values)
        {
            if (!_byName.TryGetValue(name, out var f))
                throw new FormatException($"encode {CName}: no field '{name}' (fields: {string.Join(", ", Fields.Select(x => x.Field.Name))})");
            Write(f, value, destination.Slice(f.Offset, f.Size));
        }
    }

    /// <summary>
    /// Which of this struct's fields each name is, for <see cref="EncodeNumbers"/>: a field's name, or for an IPv6
    /// field NAME.hi and NAME.lo (its first and last 8 bytes); throws FormatException for a name it lacks or a
    /// field that cannot take a number (MAC, or an IPv6 field named whole).
    /// </summary>
    public FieldLayout[] NumberFields(IReadOnlyList<string> names) => names.Select(NumberField).ToArray();

    private FieldLayout NumberField(string name)
    {
        int dot = name.LastIndexOf('.');
        if (dot > 0 && name[(dot + 1)..] is "hi" or "lo" && _byName.TryGetValue(name[..dot], out var whole) && whole.Field.Type == FieldType.Ipv6)
            return new FieldLayout(whole.Field, whole.Offset + (name.EndsWith(".lo", StringComparison.Ordinal) ? 8 : 0), 8, 1);
        if (!_byName.TryGetValue(name, out var f))
            throw new FormatException($"encode {CName}: no field '{name}' (fields: {string.Join(", ", Fields.Select(x => x.Field.Name))})");
        return f.Field.Type switch
        {
            FieldType.Ipv6 => throw new FormatException($"encode {CName}.{name}: an IPv6 field takes two numbers, {name}.hi and {name}.lo"),
            FieldType.Mac => throw new FormatException($"encode {CName}.{name}: a Mac field cannot come from a number (use MapEntry)"),
            _ => f,
        };
    }

    /// <summary>Encode numbers (one per field of <paramref name="fields"/>) into <paramref name="destination"/> (zeroed).</summary>
    public void EncodeNumbers(FieldLayout[] fields, ReadOnlySpan<ulong> numbers, Span<byte> destination)
    {
        for (int i = 0; i < fields.Length; i++)
            WriteNumber(fields[i], numbers[i], destination.Slice(fields[i].Offset, fields[i].Size));
    }

    /// <summary>Decode bytes into field values (integers as ulong, addresses as IPAddress/PhysicalAddress).</summary>
    public IReadOnlyDictionary<string, object> Decode(ReadOnlySpan<byte> bytes)
    {
        var values = new Dictionary<string, object>();
        foreach (var f in Fields)
        {
            var span = bytes.Slice(f.Offset, f.Size);
            values[f.Field.Name] = f.Field.Type switch
            {
                FieldType.U8 => (ulong)span[0],
                FieldType.U16 => (ulong)BitConverter.ToUInt16(span),
                FieldType.U32 => (ulong)BitConverter.ToUInt32(span),
                FieldType.U64 => BitConverter.ToUInt64(span),
                FieldType.Be16 => (ulong)BinaryPrimitives.ReadUInt16BigEndian(span),
                FieldType.Be32 => (ulong)BinaryPrimitives.ReadUInt32BigEndian(span),
                FieldType.Ipv4 or FieldType.Ipv6 => new IPAddress(span),
                FieldType.Mac => new PhysicalAddress(span.ToArray()),
                _ => throw new ArgumentOutOfRangeException(nameof(bytes)),
            };
        }
        return values;
    }

    private void Write(FieldLayout f, object value, Span<byte> dest)
    {
        string where = $"{CName}.{f.Field.Name}";
        switch (f.Field.Type)
        {
            case FieldType.Ipv4 or FieldType.Ipv6:
                var family = f.Field.Type == FieldType.Ipv4 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
                if (value is not IPAddress ip || ip.AddressFamily != family)
                    throw new FormatException($"encode {where}: expected an {(family == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} address, got '{value}'");
                ip.TryWriteBytes(dest, out _);
                return;
            case FieldType.Mac:
                if (value is not PhysicalAddress mac || mac.GetAddressBytes().Length != 6)
                    throw new FormatException($"encode {where}: expected a 6-byte MAC address, got '{value}'");
                mac.GetAddressBytes().CopyTo(dest);
                return;
        }

        ulong n = value switch
        {
            int i when i >= 0 => (ulong)i,
            uint u => u,
            long l when l >= 0 => (ulong)l,
            ulong ul => ul,
            ushort us => us,
            byte b => b,
            short sh when sh >= 0 => (ulong)sh,
            sbyte sb when sb >= 0 => (ulong)sb,
            _ => throw new FormatException($"encode {where}: expected a non-negative integer, got '{value}'"),
        };
        WriteNumber(f, n, dest);
    }

    // One writer for every integer-typed field, in the field's byte order.
    private void WriteNumber(FieldLayout f, ulong n, Span<byte> dest)
    {
        if (f.Size < 8 && n >> (f.Size * 8) != 0)
            throw new FormatException($"encode {CName}.{f.Field.Name}: {n} does not fit in {f.Size * 8} bits");
        switch (f.Field.Type)
        {
            case FieldType.U8: dest[0] = (byte)n; break;
            case FieldType.U16: BitConverter.TryWriteBytes(dest, (ushort)n); break;
            case FieldType.U32: BitConverter.TryWriteBytes(dest, (uint)n); break;
            case FieldType.U64: BitConverter.TryWriteBytes(dest, n); break;
            case FieldType.Be16: BinaryPrimitives.WriteUInt16BigEndian(dest, (ushort)n); break;
            case FieldType.Be32 or FieldType.Ipv4: BinaryPrimitives.WriteUInt32BigEndian(dest, (uint)n); break;
            case FieldType.Ipv6: BinaryPrimitives.WriteUInt64BigEndian(dest, n); break; // one half (NumberFields)
        }
    }
}
