using System.Text.Json;
using System.Text.Json.Serialization;

namespace PluginHost.Datapath;

/// <summary>
/// What a deployed pipeline looks like, written to the runtime directory so that <c>status</c> and
/// <c>stats</c> can read the pinned datapath without a running host.
/// </summary>
public sealed record PipelineState(
    string Name,
    string Interface,
    string? Namespace,
    string Direction,
    int Ifindex,
    uint Generation,
    string PinDirectory,
    string GenerationDirectory,
    DateTimeOffset DeployedAt,
    IReadOnlyList<StageState> Stages)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static string FilePath(string runtimeDirectory, string pipeline) => Path.Combine(runtimeDirectory, "pipelines", pipeline + ".json");

    public void Save(string runtimeDirectory)
    {
        string path = FilePath(runtimeDirectory, Name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, Json));
        File.Move(tmp, path, overwrite: true);
    }

    public static IReadOnlyList<PipelineState> LoadAll(string runtimeDirectory)
    {
        string dir = Path.Combine(runtimeDirectory, "pipelines");
        if (!Directory.Exists(dir))
            return [];
        return Directory.GetFiles(dir, "*.json").Order(StringComparer.Ordinal)
            .Select(f => JsonSerializer.Deserialize<PipelineState>(File.ReadAllText(f), Json)
                ?? throw new InvalidDataException($"read pipeline state {f}: empty"))
            .ToList();
    }
}

public sealed record StageState(int Index, string Plugin, string Program, IReadOnlyList<string> Maps);
