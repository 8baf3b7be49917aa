using System.Text;
using System.Text.RegularExpressions;
using PluginHost.Contract;

namespace PluginHost.Compose;

/// <summary>A plugin's map as instantiated for one stage: its C name, structs, definition and codecs.</summary>
public sealed partial class StageMap
{
    public const int MaxNameLength = 11; // "sNN_" + name must fit the kernel's 15-character map names

    public StageMap(int stageIndex, MapSchema schema)
    {
        Schema = schema;
        CName = $"s{stageIndex}_{schema.Name}";
        Key = StructLayout.Compute(CName + "_key", schema.Key);
        Value = StructLayout.Compute(CName + "_value", schema.Value);
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
        return sb.ToString();
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    internal static partial Regex Identifier();
}
