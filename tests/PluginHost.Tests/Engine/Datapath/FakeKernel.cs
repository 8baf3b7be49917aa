using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Datapath;
using PluginHost.Interop;
using PluginHost.Kernel;
using PluginHost.Observe;
using PluginHost.Pipelines;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>
/// A BPF filesystem and kernel in memory, for the reload protocol's unit tests: pins, programs (by id), maps
/// (key → value), tcx links. <see cref="Fail"/> scripts the kernel's replies: it is asked before every operation
/// ("load", "write", "delete", "canary", "pin", "attach", "update-link", "remove", "open-map") with the target,
/// and an exception it returns is thrown as the kernel's error.
/// </summary>
internal sealed class FakeKernel : IDatapathKernel
{
    private uint _nextId = 100;

    public Dictionary<string, uint> Programs { get; } = [];                      // entry-program pin → program id
    public Dictionary<string, FakeMap> Maps { get; } = [];                       // map pin → map
    public Dictionary<string, FakeLink> Links { get; } = [];                     // link pin → link
    public HashSet<string> OtherPins { get; } = [];                              // prog arrays, stats
    public List<string> Operations { get; } = [];

    public Func<string, string, Exception?> Fail { get; set; } = (_, _) => null;

    /// <summary>Every pin, sorted: compared before and after an apply that must change nothing.</summary>
    public IReadOnlyList<string> AllPins =>
        Programs.Keys.Concat(Maps.Keys).Concat(Links.Keys).Concat(OtherPins).Order(StringComparer.Ordinal).ToList();

    public void Check(string operation, string target)
    {
        Operations.Add($"{operation} {target}");
        if (Fail(operation, target) is { } e)
            throw e;
    }

    public void EnsureRoot(string bpfRoot)
    {
    }

    public bool Exists(string path) => AllPins.Any(p => p == path || p.StartsWith(path + "/", StringComparison.Ordinal));

    public IReadOnlyList<uint> PinnedGenerations(string pipelineDirectory) =>
        AllPins.Where(p => p.StartsWith(pipelineDirectory + "/g", StringComparison.Ordinal))
            .Select(p => p[(pipelineDirectory.Length + 2)..].Split('/')[0])
            .Select(n => uint.TryParse(n, out uint g) ? g : 0).Where(g => g > 0).Distinct().Order().ToList();

    public IReadOnlyList<string> PinnedMaps(string directory) => Maps.Keys.Where(p => Path.GetDirectoryName(p) == directory).ToList();

    public void Remove(string path)
    {
        Check("remove", path);
        bool Under(string p) => p == path || p.StartsWith(path + "/", StringComparison.Ordinal);
        foreach (var p in Programs.Keys.Where(Under).ToList())
            Programs.Remove(p);
        foreach (var p in Maps.Keys.Where(Under).ToList())
            Maps.Remove(p);
        foreach (var p in Links.Keys.Where(Under).ToList())
        {
            Links[p].Pinned = false;
            Links.Remove(p);
        }
        OtherPins.RemoveWhere(Under);
    }

    public ILoadedGeneration Load(ChainSpec spec, string objectPath, uint generation, IReadOnlyDictionary<string, string> reuse)
    {
        Check("load", spec.PipelineName);
        var maps = spec.Stages.SelectMany(s => s.Maps).ToDictionary(m => m.CName,
            m => reuse.TryGetValue(m.CName, out var pin) ? Maps[pin] : new FakeMap(this, m.CName));
        return new Loaded(this, spec.PipelineName, _nextId++, maps);
    }

    public IMapAccess OpenMap(string pin)
    {
        Check("open-map", pin);
        return Maps.TryGetValue(pin, out var map) ? map : throw new BpfException($"open pinned map {pin}", -2);
    }

    public ILinkAccess? OpenLink(string pin) => Links.TryGetValue(pin, out var link) ? new LinkHandle(this, link) : null;

    public ILinkAccess Attach(string programPin, int ifindex, TcxHook hook, string? ns)
    {
        Check("attach", programPin);
        return new LinkHandle(this, new FakeLink { Id = _nextId++, ProgramId = Programs[programPin], Ifindex = ifindex, Hook = hook });
    }

    public uint ProgramId(string programPin) => Programs[programPin];

    // Every retired generation counted 10 packets at the entry and 1 of everything in each stage.
    /// <summary>Grace periods waited for (<see cref="IDatapathKernel.WaitForRunningPrograms"/>).</summary>
    public int GracePeriods => _gracePeriods;

    private int _gracePeriods;

    public void WaitForRunningPrograms() => Interlocked.Increment(ref _gracePeriods);

    public PipelineCounters ReadCounters(string statsPin, int stages) =>
        CounterReader.FromRows("", 0, Enumerable.Repeat(("", ""), stages).ToList(),
            row => Enumerable.Range(0, CounterLayout.PerRow).Select(c => row == 0 ? (c == (int)EntryCounter.Packets ? 10ul : 0ul) : 1ul).ToArray());

    public IHeldGeneration Hold(PipelineState state) => new Held(this, state.RequiredPins.ToList());

    // Held "fds": the objects behind each pin when it was held.
    private sealed class Held : IHeldGeneration
    {
        private readonly FakeKernel _kernel;
        private readonly List<string> _required;
        private readonly Dictionary<string, Action> _pinners = [];

        public Held(FakeKernel kernel, List<string> required)
        {
            _kernel = kernel;
            _required = required;
            foreach (var pin in required)
            {
                if (kernel.Programs.TryGetValue(pin, out uint id))
                    _pinners[pin] = () => kernel.Programs[pin] = id;
                else if (kernel.Maps.TryGetValue(pin, out var map))
                    _pinners[pin] = () => kernel.Maps[pin] = map;
                else if (kernel.Links.TryGetValue(pin, out var link))
                    _pinners[pin] = () => { link.Pinned = true; kernel.Links[pin] = link; };
                else if (kernel.OtherPins.Contains(pin))
                    _pinners[pin] = () => kernel.OtherPins.Add(pin);
            }
        }

        public IReadOnlyList<string> Restore()
        {
            var missing = _required.Where(p => !_kernel.AllPins.Contains(p) && _pinners.ContainsKey(p)).ToList();
            foreach (var pin in missing)
                _pinners[pin]();
            return missing;
        }

        public IReadOnlyList<string> Lost() => _required.Where(p => !_kernel.AllPins.Contains(p) && !_pinners.ContainsKey(p)).ToList();

        public void Dispose()
        {
        }
    }

    /// <summary>The program id the link pinned at <paramref name="linkPin"/> runs (0 when there is none).</summary>
    public uint Running(string linkPin) => Links.TryGetValue(linkPin, out var link) ? link.ProgramId : 0;

    public sealed class FakeLink
    {
        public uint Id { get; init; }
        public uint ProgramId { get; set; }
        public int Ifindex { get; init; }
        public TcxHook Hook { get; init; }
        public bool Pinned { get; set; }
    }

    private sealed class LinkHandle(FakeKernel kernel, FakeLink link) : ILinkAccess
    {
        public TcxLinkInfo Info => new(link.Id, link.ProgramId, (uint)link.Ifindex, link.Hook == TcxHook.Ingress ? 46u : 47u);

        public void Update(string programPin, string? expectedProgramPin)
        {
            kernel.Check("update-link", programPin);
            if (expectedProgramPin is not null && kernel.Programs.GetValueOrDefault(expectedProgramPin) != link.ProgramId)
                throw new BpfException($"update link to program {programPin}", -1, "the attached program is not the expected one");
            link.ProgramId = kernel.Programs[programPin];
        }

        public void Pin(string path)
        {
            kernel.Check("pin", path);
            link.Pinned = true;
            kernel.Links[path] = link;
        }

        public void Dispose()
        {
        }
    }

    /// <summary>A map: key bytes (hex) → value bytes, with the order of writes and deletes kept.</summary>
    public sealed class FakeMap(FakeKernel kernel, string name) : IMapAccess
    {
        public SortedDictionary<string, byte[]> Entries { get; } = new(StringComparer.Ordinal);
        public List<string> Log { get; } = [];

        public PackedEntries ReadAll(int keySize, int valueSize, bool skipZero)
        {
            var all = new PackedEntries(keySize, valueSize);
            foreach (var (key, value) in Entries)
                if (!(skipZero && !value.AsSpan().ContainsAnyExcept((byte)0)))
                    all.Add(Convert.FromHexString(key), value);
            return all;
        }

        public void UpdateMany(PackedEntries entries, Action<int>? progress = null)
        {
            for (int i = 0; i < entries.Count; i++)
                Update(entries.Key(i), entries.Value(i));
        }

        public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
        {
            kernel.Check("write", name);
            Log.Add("write " + Convert.ToHexString(key));
            Entries[Convert.ToHexString(key)] = value.ToArray();
        }

        public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
        {
            if (!Entries.TryGetValue(Convert.ToHexString(key), out var found))
                return false;
            found.CopyTo(value);
            return true;
        }

        public void Delete(ReadOnlySpan<byte> key)
        {
            kernel.Check("delete", name);
            Log.Add("delete " + Convert.ToHexString(key));
            Entries.Remove(Convert.ToHexString(key));
        }

        public void Dispose()
        {
        }
    }

    private sealed class Loaded(FakeKernel kernel, string pipeline, uint entryId, Dictionary<string, FakeMap> maps) : ILoadedGeneration
    {
        public IMapAccess Map(string cName) => maps[cName];

        public CanaryReport RunCanaries(IReadOnlyList<StagePlan> stages)
        {
            kernel.Check("canary", pipeline);
            return new CanaryReport(stages.Count + 2, []);
        }

        public void Pin(string generationDirectory, IReadOnlyDictionary<string, string> mapPins)
        {
            kernel.Check("pin", generationDirectory);
            kernel.Programs[Path.Combine(generationDirectory, ChainSpec.EntryProgram)] = entryId;
            kernel.OtherPins.Add(Path.Combine(generationDirectory, ChainSpec.ChainMap));
            kernel.OtherPins.Add(Path.Combine(generationDirectory, ChainSpec.StatsMap));
            foreach (var (cName, pin) in mapPins)
            {
                kernel.Check("pin", pin);
                kernel.Maps[pin] = maps[cName];
            }
        }

        public void Dispose()
        {
        }
    }
}

/// <summary>State files in memory; <see cref="Fail"/> makes a save fail.</summary>
internal sealed class FakeStore : IPipelineStore
{
    public Dictionary<string, PipelineState> States { get; } = [];

    public Func<PipelineState, Exception?> Fail { get; set; } = _ => null;

    public PipelineState? Load(string pipeline) => States.GetValueOrDefault(pipeline);

    public void Save(PipelineState state)
    {
        if (Fail(state) is { } e)
            throw e;
        States[state.Name] = state;
    }

    public void Delete(string pipeline) => States.Remove(pipeline);
}

/// <summary>A compiler that compiles nothing: the fake kernel never reads the object.</summary>
internal sealed class FakeCompiler : IChainCompiler
{
    public CompileResult Compile(string source, string name) => new($"/nonexistent/{name}.o", Cached: false);
}
