using System.Text.Json;

namespace PluginHost.Observe;

/// <summary>An interface whose routes a pipeline withdrew: they are written with ifindex 0 and the kernel routes their packets.</summary>
/// <param name="Reason">"interface 'up2' does not exist", "interface 'up2' is down", "interface 'up2' has no carrier".</param>
/// <param name="Routes">How many routes (rules, next hops) name it.</param>
/// <param name="Since">When the host first withdrew them.</param>
public sealed record WithdrawnInterface(string Interface, string Reason, int Routes, DateTimeOffset Since);

/// <summary>
/// <c>RUNTIME/interfaces.json</c>: what each pipeline's last apply withdrew, by pipeline name, for <c>status</c> (the CLI
/// reads it with no host running). Written by the host after every apply.
/// </summary>
internal static class WithdrawnRoutes
{
    public static string FilePath(string runtimeDirectory) => Path.Combine(runtimeDirectory, "interfaces.json");

    public static IReadOnlyDictionary<string, IReadOnlyList<WithdrawnInterface>> Load(string runtimeDirectory)
    {
        string path = FilePath(runtimeDirectory);
        try
        {
            if (System.IO.File.Exists(path))
                return JsonSerializer.Deserialize<File>(System.IO.File.ReadAllText(path), HostJson.Options)?.Pipelines ?? Empty;
        }
        catch (JsonException)
        {
            // A damaged file only loses what status shows: the next apply writes it again.
        }
        return Empty;
    }

    public static void Save(string runtimeDirectory, IReadOnlyDictionary<string, IReadOnlyList<WithdrawnInterface>> pipelines)
    {
        Directory.CreateDirectory(runtimeDirectory);
        string path = FilePath(runtimeDirectory);
        Datapath.PrivateFile.WriteIfChanged(path, JsonSerializer.Serialize(new File(pipelines), HostJson.Options)); // 0600, like every runtime file
    }

    private static readonly IReadOnlyDictionary<string, IReadOnlyList<WithdrawnInterface>> Empty = new Dictionary<string, IReadOnlyList<WithdrawnInterface>>();

    private sealed record File(IReadOnlyDictionary<string, IReadOnlyList<WithdrawnInterface>> Pipelines);
}
