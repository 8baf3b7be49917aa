using System.Text.Json;
using PluginHost.Observe;
using PluginHost.Contract;

namespace PluginHost.Datapath;

/// <summary>
/// What a deployed pipeline looks like, written to the runtime directory after every change so that
/// <c>status</c>, <c>stats</c> and a restarted host can read the pinned datapath.
/// </summary>
/// <param name="CodeKey">Identity of the running code (source hash and hook): equal means no new generation is needed.</param>
/// <param name="Maps">Where each stage map is pinned, with its layout.</param>
/// <param name="Retired">Counters of generations already retired, so totals survive reloads.</param>
/// <param name="Retiring">Generations swapped out and waiting for their grace period.</param>
/// <param name="Previous">The state this generation replaced (its own <c>Previous</c> empty), recorded with it before the
/// link update: a host killed between the two finds the link still running the previous generation and adopts it.</param>
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
    IReadOnlyList<StageState> Stages,
    string CodeKey,
    IReadOnlyList<MapState> Maps,
    CounterTotals Retired,
    IReadOnlyList<RetiringGeneration> Retiring,
    PipelineState? Previous = null)
{
    /// <summary>The plugin builds the canaries last checked for this pipeline (<see cref="GenerationPlan.CanaryKeyOf"/>). When
    /// it differs, even a change of map entries alone runs the canaries again before it goes live. Null in state files of
    /// hosts that did not record it.</summary>
    public string? CanaryKey { get; init; }

    /// <summary>How many canaries (the host's and the plugins') passed when <see cref="CanaryKey"/> was last checked.</summary>
    public int CanariesPassed { get; init; }

    /// <summary>Where this generation's entry program is pinned.</summary>
    public string EntryPin => Path.Combine(GenerationDirectory, Compose.ChainSpec.EntryProgram);

    /// <summary>
    /// The pins this generation needs while it runs: the link, its entry program, prog array and stats, and its
    /// stage maps. A prog array whose last reference goes is emptied by the kernel (every later stage then stops
    /// running), and a link whose pin and fds go is detached.
    /// </summary>
    public IEnumerable<string> RequiredPins =>
        new[] { Path.Combine(PinDirectory, GenerationPlan.LinkPin), EntryPin,
                Path.Combine(GenerationDirectory, Compose.ChainSpec.ChainMap), Path.Combine(GenerationDirectory, Compose.ChainSpec.StatsMap) }
            .Concat(Maps.Select(m => m.Pin));

    internal static JsonSerializerOptions Json => HostJson.Options;

    public static string FilePath(string runtimeDirectory, string pipeline) => Path.Combine(runtimeDirectory, "pipelines", pipeline + ".json");

    public void Save(string runtimeDirectory)
    {
        string path = FilePath(runtimeDirectory, Name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        PrivateFile.WriteAllText(path, JsonSerializer.Serialize(this, Json));
    }

    public static PipelineState? Load(string runtimeDirectory, string pipeline)
    {
        string path = FilePath(runtimeDirectory, pipeline);
        return File.Exists(path) ? Read(path) : null;
    }

    public static IReadOnlyList<PipelineState> LoadAll(string runtimeDirectory)
    {
        string dir = Path.Combine(runtimeDirectory, "pipelines");
        if (!Directory.Exists(dir))
            return [];
        return Directory.GetFiles(dir, "*.json").Order(StringComparer.Ordinal).Select(Read).ToList();
    }

    // The last state read from each file, with its text: an apply reads the same file several times (adopt, retire,
    // audit, status), and parsing it costs more than reading it. The state is immutable, so it is handed out again.
    private static readonly Dictionary<string, (string Text, PipelineState State)> LastRead = [];
    private static readonly Lock LastReadLock = new();

    private static PipelineState Read(string path)
    {
        try
        {
            string text = File.ReadAllText(path);
            lock (LastReadLock)
                if (LastRead.TryGetValue(path, out var last) && last.Text == text)
                    return last.State;
            var state = JsonSerializer.Deserialize<PipelineState>(text, Json)
                ?? throw new InvalidDataException($"read pipeline state {path}: empty");
            lock (LastReadLock)
            {
                if (LastRead.Count >= 256)
                    LastRead.Clear(); // bounded: many pipelines in a test run
                LastRead[path] = (text, state);
            }
            return state;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"read pipeline state {path}: {e.Message}", e);
        }
    }
}

public sealed record StageState(int Index, string Plugin, string Instance, string Program, IReadOnlyList<string> Maps)
{
    /// <summary>The running plugin build's informational version ("" in state files that did not record it).</summary>
    public string Version { get; init; } = "";

    /// <summary>The running plugin build's DLL SHA-256 ("" in state files that did not record it).</summary>
    public string Sha256 { get; init; } = "";
}

/// <param name="Pin">Full path of the pinned map.</param>
/// <param name="PinName">Stable identity across generations (SourcePolicy-0-routes).</param>
/// <param name="CName">The map's name in this generation's C and in the kernel.</param>
public sealed record MapState(string Pin, string PinName, string CName, int Stage, string Fingerprint, MapSchema Schema);

/// <param name="Stages">Stage instances of that generation, to fold its counters into the totals.</param>
public sealed record RetiringGeneration(uint Generation, IReadOnlyList<string> Stages, DateTimeOffset Due);
