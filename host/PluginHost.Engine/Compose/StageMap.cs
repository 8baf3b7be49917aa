using System.Text;
using System.Text.RegularExpressions;
using PluginHost.Contract;

namespace PluginHost.Compose;

/// <summary>A plugin's map as instantiated for one stage: its C name, structs, definition and codecs.</summary>
public sealed partial class StageMap
{
    public const int MaxNameLength = 11; // "sNN_" + name must fit the kernel's 15-character map names

    /// <summary>The name of the selector of a stage with double-buffered maps; no plugin map may have it.</summary>
    public const string BankSelectorName = "bank";

    /// <param name="secondCopy">The second copy of a double-buffered map (C name <c>sN_NAME_b</c>, pin <c>...-NAME-b</c>).</param>
    public StageMap(int stageIndex, string instanceName, MapSchema schema, bool secondCopy = false)
    {
        Schema = schema;
        SecondCopy = secondCopy;
        string suffix = secondCopy ? "_b" : "";
        CName = $"s{stageIndex}_{schema.Name}{suffix}";
        PinName = $"{instanceName}-{schema.Name}{(secondCopy ? "-b" : "")}";
        Key = StructLayout.Compute($"s{stageIndex}_{schema.Name}_key", schema.Key);
        Value = StructLayout.Compute($"s{stageIndex}_{schema.Name}_value", schema.Value);
        Fingerprint = ComputeFingerprint(schema, Key, Value);
    }

    /// <summary>A stage's maps as the datapath has them: each double-buffered map twice, then the stage's bank selector.</summary>
    public static IReadOnlyList<StageMap> ForStage(int stageIndex, string instanceName, IReadOnlyList<MapSchema> schemas)
    {
        var maps = new List<StageMap>();
        foreach (var schema in schemas)
        {
            maps.Add(new StageMap(stageIndex, instanceName, schema));
            if (schema.DoubleBuffered)
                maps.Add(new StageMap(stageIndex, instanceName, schema, secondCopy: true));
        }
        if (schemas.Any(s => s.DoubleBuffered))
            maps.Add(new StageMap(stageIndex, instanceName, BankSelectorSchema));
        return maps;
    }

    /// <summary>Which copies of a stage's double-buffered maps packets use: one U32 (0 or 1), written by the host only.</summary>
    public static MapSchema BankSelectorSchema { get; } = new(BankSelectorName, MapKind.Array,
        [new Field("index", FieldType.U32)], [new Field("bank", FieldType.U32)], 1, MapContents.State);

    /// <summary>The second copy of a double-buffered map.</summary>
    public bool SecondCopy { get; }

    /// <summary>The stage's bank selector (see <see cref="BankSelectorSchema"/>).</summary>
    public bool IsBankSelector => ReferenceEquals(Schema, BankSelectorSchema);

    /// <summary>The C expression a template reads the bank with (<c>{{ stage.bank }}</c>).</summary>
    public static string BankExpression(int stageIndex) => $"s{stageIndex}_bank_now()";

    /// <summary>The stable name of this map's pin across generations, e.g. SourcePolicy-0-routes (bpffs names may not contain dots).</summary>
    public string PinName { get; }

    /// <summary>
    /// Identity of the layout: map type, capacity, contents and every field's name, type, offset and size.
    /// A pinned map is reused only by a generation with the same fingerprint.
    /// </summary>
    public string Fingerprint { get; }

    /// <summary>The layout as text, the input of <see cref="Fingerprint"/> and of change messages.</summary>
    public static string Describe(MapSchema schema, StructLayout key, StructLayout value) =>
        $"{schema.Kind} max_entries={schema.MaxEntries} contents={schema.Contents}{(schema.DoubleBuffered ? " double-buffered" : "")}; " +
        $"key: {Fields(key)}; value: {Fields(value)}";

    private static string Fields(StructLayout layout) =>
        string.Join(", ", layout.Fields.Select(f => $"{f.Field.Name} {f.Field.Type}@{f.Offset}/{f.Size}")) + $" (size {layout.Size})";

    private static string ComputeFingerprint(MapSchema schema, StructLayout key, StructLayout value) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Describe(schema, key, value))))[..16];

    /// <summary>What differs between two layouts of a map, for the message that refuses a reload.</summary>
    public static string Difference(MapSchema before, MapSchema after)
    {
        var changes = new List<string>();
        if (before.Kind != after.Kind)
            changes.Add($"type {before.Kind} → {after.Kind}");
        if (before.MaxEntries != after.MaxEntries)
            changes.Add($"max entries {before.MaxEntries} → {after.MaxEntries}");
        if (before.Contents != after.Contents)
            changes.Add($"contents {before.Contents} → {after.Contents}");
        if (before.DoubleBuffered != after.DoubleBuffered)
            changes.Add(after.DoubleBuffered ? "now double-buffered" : "no longer double-buffered");
        foreach (var (old, now, part) in new[] { (before.Key, after.Key, "key"), (before.Value, after.Value, "value") })
        {
            var oldLayout = StructLayout.Compute("x", old);
            var newLayout = StructLayout.Compute("x", now);
            foreach (var f in oldLayout.Fields)
            {
                var match = newLayout.Fields.FirstOrDefault(n => n.Field.Name == f.Field.Name);
                if (match is null)
                    changes.Add($"{part} field '{f.Field.Name}' removed");
                else if (match.Field.Type != f.Field.Type || match.Offset != f.Offset)
                    changes.Add($"{part} field '{f.Field.Name}' {f.Field.Type}@{f.Offset} → {match.Field.Type}@{match.Offset}");
            }
            foreach (var n in newLayout.Fields.Where(n => oldLayout.Fields.All(f => f.Field.Name != n.Field.Name)))
                changes.Add($"{part} field '{n.Field.Name}' {n.Field.Type} added");
        }
        return changes.Count == 0 ? "layout changed" : string.Join("; ", changes);
    }

    public MapSchema Schema { get; }

    /// <summary>The map's name in C, in the kernel and in the pin directory, e.g. s0_routes.</summary>
    public string CName { get; }

    public StructLayout Key { get; }

    public StructLayout Value { get; }

    /// <summary>The problems with a plugin's map schema; empty when it is usable.</summary>
    public static IEnumerable<string> Validate(MapSchema schema)
    {
        string where = $"map '{schema.Name}'";
        if (!Identifier().IsMatch(schema.Name) || schema.Name.Length > MaxNameLength)
            yield return $"{where}: name must be a C identifier of at most {MaxNameLength} characters";
        if (schema.MaxEntries == 0)
            yield return $"{where}: max entries must be at least 1";
        if (schema.Key.Count == 0 || schema.Value.Count == 0)
            yield return $"{where}: key and value need at least one field each";
        foreach (var (fields, part) in new[] { (schema.Key, "key"), (schema.Value, "value") })
        {
            foreach (var f in fields.Where(f => !Identifier().IsMatch(f.Name)))
                yield return $"{where}: {part} field '{f.Name}' is not a C identifier";
            foreach (var dup in fields.GroupBy(f => f.Name).Where(g => g.Count() > 1))
                yield return $"{where}: {part} field '{dup.Key}' appears twice";
        }
        if (schema.Kind == MapKind.LpmTrie && (schema.Key.Count < 2 || schema.Key[0] is not { Name: "prefixlen", Type: FieldType.U32 }))
            yield return $"{where}: an LPM trie key must start with a U32 field named 'prefixlen' followed by the data";
        if (schema.Kind == MapKind.LpmTrie && schema.Key.Count >= 2 && schema.Key[0] is { Name: "prefixlen", Type: FieldType.U32 } && HasPadding(schema.Key))
            yield return $"{where}: an LPM trie key must have no padding (the trie matches raw key bytes): order or size the fields so each starts where the last ends";
        if (schema.Kind is MapKind.Array or MapKind.PerCpuArray && (schema.Key.Count != 1 || schema.Key[0].Type != FieldType.U32))
            yield return $"{where}: an array key must be a single U32 field";
        if (schema.DoubleBuffered && schema.Contents != MapContents.Config)
            yield return $"{where}: only a Config map can be double-buffered (the datapath writes State maps in place)";
        if (schema.DoubleBuffered && schema.Name.Length > MaxNameLength - 2)
            yield return $"{where}: a double-buffered map's name must be at most {MaxNameLength - 2} characters (its second copy adds '_b')";
    }

    /// <summary>The problems with a plugin's set of maps (names its double-buffered maps' copies and selector take).</summary>
    public static IEnumerable<string> ValidateSet(IReadOnlyList<MapSchema> schemas)
    {
        var names = schemas.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var schema in schemas.Where(s => s.DoubleBuffered && names.Contains(s.Name + "_b")))
            yield return $"map '{schema.Name}_b': the name of double-buffered map '{schema.Name}''s second copy";
        if (schemas.Any(s => s.DoubleBuffered) && names.Contains(BankSelectorName))
            yield return $"map '{BankSelectorName}': the name of the bank selector of a stage with double-buffered maps";
    }

    private static bool HasPadding(IReadOnlyList<Field> fields)
    {
        var layout = StructLayout.Compute("probe", fields);
        int end = 0;
        foreach (var f in layout.Fields)
        {
            if (f.Offset != end)
                return true;
            end = f.Offset + f.Size;
        }
        return end != layout.Size;
    }

    /// <summary>C structs and the BTF-defined map.</summary>
    public string ToC()
    {
        var sb = new StringBuilder();
        if (!SecondCopy) // the copies share their structs
            sb.Append(Key.ToC()).Append(Value.ToC());
        string type = Schema.Kind switch
        {
            MapKind.Hash => "BPF_MAP_TYPE_HASH",
            MapKind.LpmTrie => "BPF_MAP_TYPE_LPM_TRIE",
            MapKind.Array => "BPF_MAP_TYPE_ARRAY",
            MapKind.PerCpuArray => "BPF_MAP_TYPE_PERCPU_ARRAY",
            MapKind.LruHash => "BPF_MAP_TYPE_LRU_HASH",
            _ => throw new ArgumentOutOfRangeException(nameof(Schema)),
        };
        sb.Append("struct {\n")
          .Append($"\t__uint(type, {type});\n")
          .Append($"\t__uint(max_entries, {Schema.MaxEntries});\n")
          .Append($"\t__type(key, struct {Key.CName});\n")
          .Append($"\t__type(value, struct {Value.CName});\n");
        if (Schema.Kind == MapKind.LpmTrie)
            sb.Append("\t__uint(map_flags, BPF_F_NO_PREALLOC);\n");
        sb.Append($"}} {CName} SEC(\".maps\");\n");
        if (IsBankSelector)
            sb.Append($"static __always_inline __u32 {CName}_now(void)\n{{\n\t__u32 index = 0;\n" +
                      $"\tstruct {Value.CName} *b = bpf_map_lookup_elem(&{CName}, &index);\n\n\treturn b ? b->bank : 0;\n}}\n");
        return sb.ToString();
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    internal static partial Regex Identifier();
}
