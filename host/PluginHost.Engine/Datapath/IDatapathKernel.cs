using PluginHost.Compose;
using PluginHost.Kernel;
using PluginHost.Observe;
using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>
/// What the deploy protocol asks of the kernel, by pin path. <see cref="BpfDatapathKernel"/> does it over
/// PluginHost.Bpf; unit tests script the replies, so every decision and every failure path of a reload is
/// tested without a kernel (the kernel and lab tests prove the real one).
/// </summary>
internal interface IDatapathKernel
{
    /// <summary>Fail early, with the remedy, when <paramref name="bpfRoot"/> is not on a mounted BPF filesystem; create it.</summary>
    void EnsureRoot(string bpfRoot);

    /// <summary>Whether something (a pin or a pin directory) exists in the BPF filesystem.</summary>
    bool Exists(string path);

    /// <summary>Generation numbers pinned under a pipeline's directory (g1, g2, ...).</summary>
    IReadOnlyList<uint> PinnedGenerations(string pipelineDirectory);

    /// <summary>Pins directly in a directory (the pipeline's maps/).</summary>
    IReadOnlyList<string> PinnedMaps(string directory);

    /// <summary>Unpin a pin, or every pin under a directory.</summary>
    void Remove(string path);

    /// <summary>Load a compiled chain as <paramref name="generation"/>, taking over the maps pinned at <paramref name="reuse"/>
    /// (by C name). Not attached, nothing pinned.</summary>
    ILoadedGeneration Load(ChainSpec spec, string objectPath, uint generation, IReadOnlyDictionary<string, string> reuse);

    /// <summary>Open a pinned map.</summary>
    IMapAccess OpenMap(string pin);

    /// <summary>The link pinned at <paramref name="pin"/>, or null when there is none.</summary>
    ILinkAccess? OpenLink(string pin);

    /// <summary>Attach the program pinned at <paramref name="programPin"/> with a new tcx link (in <paramref name="ns"/>).</summary>
    ILinkAccess Attach(string programPin, int ifindex, TcxHook hook, string? ns);

    /// <summary>The kernel id of a pinned program.</summary>
    uint ProgramId(string programPin);

    /// <summary>Open and keep fds on everything a running generation needs that is pinned now (see <see cref="PipelineState.RequiredPins"/>).</summary>
    IHeldGeneration Hold(PipelineState state);

    /// <summary>Return once every BPF program running at the call has finished (an RCU grace period).</summary>
    void WaitForRunningPrograms();

    /// <summary>Read a pinned stats map.</summary>
    PipelineCounters ReadCounters(string statsPin, int stages);
}

/// <summary>A loaded, not yet attached, generation.</summary>
internal interface ILoadedGeneration : IDisposable
{
    /// <summary>A stage map of the new generation, by C name (new, or the reused one).</summary>
    IMapAccess Map(string cName);

    /// <summary>Its programs as the verifier left them (entry first); none where the kernel cannot say (tests).</summary>
    IReadOnlyList<ProgramSize> Programs() => [];

    /// <summary>The kernel objects, for PluginHost.Testing to run frames through; null where there are none (scripted kernels).</summary>
    LoadedChain? Chain => null;

    /// <summary>Run the host's and the plugins' canaries through the new entry program.</summary>
    CanaryReport RunCanaries(IReadOnlyList<StagePlan> stages);

    /// <summary>Pin the entry program, prog array and stats under <paramref name="generationDirectory"/>, and the
    /// maps in <paramref name="mapPins"/> (by C name) where given.</summary>
    void Pin(string generationDirectory, IReadOnlyDictionary<string, string> mapPins);
}

/// <summary>A verified program: its name in the chain, its instructions after the verifier, its JIT-compiled bytes.</summary>
public sealed record ProgramSize(string Program, uint Instructions, uint JitedBytes);

/// <summary>
/// Fds on a running generation's objects, held by the host process: while it runs, a pin removed by hand neither
/// detaches the link nor empties the prog array, and <see cref="Restore"/> pins it again.
/// </summary>
internal interface IHeldGeneration : IDisposable
{
    /// <summary>Pin again every required pin that is missing and held; returns those restored.</summary>
    IReadOnlyList<string> Restore();

    /// <summary>Required pins that are missing and not held (nothing can restore them).</summary>
    IReadOnlyList<string> Lost();
}

/// <summary>Raw byte access to a map.</summary>
internal interface IMapAccess : IDisposable
{
    /// <summary>Every entry; <paramref name="skipZero"/> leaves out all-zero values (array elements always exist).</summary>
    PackedEntries ReadAll(int keySize, int valueSize, bool skipZero);

    void UpdateMany(PackedEntries entries, Action<int>? progress = null);

    void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value);

    void Delete(ReadOnlySpan<byte> key);

    /// <summary>One entry's value; false when the key is not there.</summary>
    bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value);
}

/// <summary>A tcx link.</summary>
internal interface ILinkAccess : IDisposable
{
    TcxLinkInfo Info { get; }

    /// <summary>Swap in the program pinned at <paramref name="programPin"/>; with <paramref name="expectedProgramPin"/>,
    /// only if that program is the one attached (compare-and-swap).</summary>
    void Update(string programPin, string? expectedProgramPin);

    void Pin(string path);
}

/// <summary>Where pipeline state files live (the runtime directory).</summary>
internal interface IPipelineStore
{
    PipelineState? Load(string pipeline);

    void Save(PipelineState state);

    void Delete(string pipeline);
}

/// <summary>State files in the runtime directory.</summary>
internal sealed class PipelineStore(string runtimeDirectory) : IPipelineStore
{
    public PipelineState? Load(string pipeline) => PipelineState.Load(runtimeDirectory, pipeline);

    public void Save(PipelineState state) => state.Save(runtimeDirectory);

    public void Delete(string pipeline) => File.Delete(PipelineState.FilePath(runtimeDirectory, pipeline));
}

/// <summary>Compiles a composed chain to a BPF object file.</summary>
internal interface IChainCompiler
{
    Compile.CompileResult Compile(string source, string name);
}
