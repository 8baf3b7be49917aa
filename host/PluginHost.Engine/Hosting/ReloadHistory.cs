using System.Text.Json;
using PluginHost.Datapath;

namespace PluginHost.Hosting;

/// <summary>The last successful and the last failed apply, kept beside the pipeline state for <c>status</c>.</summary>
public sealed record ReloadHistory(int Reloads, int Failures, DateTimeOffset? LastSuccessAt, string? LastSuccess,
    DateTimeOffset? LastFailureAt, string? LastFailure)
{
    public static string FilePath(string runtimeDirectory) => Path.Combine(runtimeDirectory, "reloads.json");

    public static ReloadHistory Load(string runtimeDirectory)
    {
        string path = FilePath(runtimeDirectory);
        try
        {
            return File.Exists(path)
                ? JsonSerializer.Deserialize<ReloadHistory>(File.ReadAllText(path), PipelineState.Json) ?? Empty
                : Empty;
        }
        catch (JsonException)
        {
            return Empty; // unreadable (edited by hand): counting starts again
        }
    }

    /// <summary>The last apply failed (no success since): the next success clears it, and is logged as clearing it.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Failing => LastFailureAt is { } failed && (LastSuccessAt is not { } ok || ok < failed);

    private static ReloadHistory Empty => new(0, 0, null, null, null, null);

    public ReloadHistory Succeeded(IReadOnlyList<ApplyResult> results) => this with
    {
        Reloads = Reloads + 1,
        LastSuccessAt = DateTimeOffset.UtcNow,
        LastSuccess = string.Join("; ", results.Select(r => $"{r.Pipeline}: {r.Kind.ToString().ToLowerInvariant()} generation {r.Generation}" +
            (r.CanariesRun > 0 ? $", {r.CanariesRun} canaries passed" : ""))),
    };

    public ReloadHistory Failed(string error) => this with
    {
        Reloads = Reloads + 1,
        Failures = Failures + 1,
        LastFailureAt = DateTimeOffset.UtcNow,
        // Kept in a file and shown by status: its values are cut, and the whole is bounded (a reload may have thousands of errors).
        LastFailure = Config.ConfigText.CutQuoted(error, 4 * Config.ConfigText.MaxMessage),
    };

    public void Save(string runtimeDirectory)
    {
        Directory.CreateDirectory(runtimeDirectory);
        string path = FilePath(runtimeDirectory);
        // By a rename, though it costs a command ~0.3 ms: status reads it from another process and must never see it half written.
        Datapath.PrivateFile.WriteAllText(path, JsonSerializer.Serialize(this, PipelineState.Json));
    }
}
