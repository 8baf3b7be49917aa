using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Kernel;
using PluginHost.Net;
using PluginHost.Observe;
using PluginHost.Pipelines;

namespace PluginHost.Datapath;

/// <summary>The deploy protocol's kernel: PluginHost.Bpf objects opened by pin path.</summary>
internal sealed class BpfDatapathKernel : IDatapathKernel
{
    public static BpfDatapathKernel Instance { get; } = new();

    public void EnsureRoot(string bpfRoot) => BpfFs.EnsureUsable(bpfRoot);

    public bool Exists(string path) => File.Exists(path) || Directory.Exists(path);

    public IReadOnlyList<uint> PinnedGenerations(string pipelineDirectory) =>
        !Directory.Exists(pipelineDirectory) ? []
        : Directory.GetDirectories(pipelineDirectory, "g*")
            .Select(d => uint.TryParse(Path.GetFileName(d)[1..], out uint n) ? n : 0).Where(n => n > 0).Order().ToList();

    public IReadOnlyList<string> PinnedMaps(string directory) => Directory.Exists(directory) ? Directory.GetFiles(directory) : [];

    public void Remove(string path)
    {
        if (Directory.Exists(path))
            BpfFs.RemoveTree(path);
        else
            File.Delete(path);
    }

    public ILoadedGeneration Load(ChainSpec spec, string objectPath, uint generation, IReadOnlyDictionary<string, string> reuse)
    {
        var opened = new Dictionary<string, BpfMap>();
        try
        {
            foreach (var (cName, pin) in reuse)
                opened[cName] = BpfMap.OpenPinned(pin);
            return new Loaded(spec, objectPath, ChainLoader.Load(spec, objectPath, generation, opened));
        }
        finally
        {
            // The loaded object holds its own references to reused maps.
            foreach (var map in opened.Values)
                map.Dispose();
        }
    }

    public IMapAccess OpenMap(string pin) => new Map(BpfMap.OpenPinned(pin), owned: true);

    public ILinkAccess? OpenLink(string pin) => File.Exists(pin) ? new Link(TcxLink.OpenPinned(pin)) : null;

    public ILinkAccess Attach(string programPin, int ifindex, TcxHook hook, string? ns)
    {
        using var program = BpfProgram.OpenPinned(programPin);
        return new Link(NamespaceScope.Run(ns, () => TcxLink.Attach(program, ifindex, hook)));
    }

    public uint ProgramId(string programPin)
    {
        using var program = BpfProgram.OpenPinned(programPin);
        return program.Id;
    }

    public IHeldGeneration Hold(PipelineState state) => new Held(state.RequiredPins.ToList());

    private readonly Lazy<RcuFence> _fence = new(() => new RcuFence());

    public void WaitForRunningPrograms() => _fence.Value.Wait();

    public PipelineCounters ReadCounters(string statsPin, int stages)
    {
        using var stats = BpfMap.OpenPinned(statsPin);
        return CounterReader.Read(stats, stages);
    }

    // Pins are opened as what they are: the link, the entry program, maps (prog array, stats, stage maps).
    private sealed class Held : IHeldGeneration
    {
        private readonly List<string> _required;
        private readonly Dictionary<string, Action<string>> _pinners = [];
        private readonly List<IDisposable> _objects = [];

        public Held(List<string> required)
        {
            _required = required;
            foreach (var pin in required.Where(File.Exists))
            {
                try
                {
                    switch (Path.GetFileName(pin))
                    {
                        case GenerationPlan.LinkPin:
                            var link = TcxLink.OpenPinned(pin);
                            _objects.Add(link);
                            _pinners[pin] = link.Pin;
                            break;
                        case ChainSpec.EntryProgram:
                            var program = BpfProgram.OpenPinned(pin);
                            _objects.Add(program);
                            _pinners[pin] = program.Pin;
                            break;
                        default:
                            var map = BpfMap.OpenPinned(pin);
                            _objects.Add(map);
                            _pinners[pin] = map.Pin;
                            break;
                    }
                }
                catch (Interop.BpfException)
                {
                    // Gone between the check and the open: reported by Lost().
                }
            }
        }

        public IReadOnlyList<string> Restore()
        {
            var restored = new List<string>();
            foreach (var pin in _required.Where(p => !File.Exists(p) && _pinners.ContainsKey(p)))
            {
                _pinners[pin](pin);
                restored.Add(pin);
            }
            return restored;
        }

        public IReadOnlyList<string> Lost() => _required.Where(p => !File.Exists(p) && !_pinners.ContainsKey(p)).ToList();

        public void Dispose()
        {
            foreach (var o in _objects)
                o.Dispose();
        }
    }

    private sealed class Loaded(ChainSpec spec, string objectPath, LoadedChain chain) : ILoadedGeneration
    {
        public IMapAccess Map(string cName) => new Map(chain.StageMaps[cName], owned: false);

        public LoadedChain Chain => chain;

        public IReadOnlyList<ProgramSize> Programs() =>
            chain.Stages.Prepend(chain.Entry).Select(p => (p.Name, p.Size)).Select(p => new ProgramSize(p.Name, p.Size.Instructions, p.Size.JitedBytes)).ToList();

        // Canary packets must not leave traces in live state (flow tables, learned entries). When the chain has
        // state maps, the canaries run through a second copy of the same object that shares the configuration
        // maps and the bank selectors but has empty state maps of its own; otherwise through the new generation
        // itself, whose counters are then cleared. (A selector is a State map, yet it says which copies of the
        // configuration hold this generation's tables: a fresh one would show canaries the copies of the last.)
        public CanaryReport RunCanaries(IReadOnlyList<StagePlan> stages)
        {
            var maps = spec.Stages.SelectMany(s => s.Maps).ToList();
            if (maps.All(m => m.Schema.Contents != MapContents.State))
            {
                var report = Canaries.Run(chain, stages);
                CounterReader.Clear(chain.Stats, spec.StatsRows);
                return report;
            }
            var shared = maps.Where(m => m.Schema.Contents == MapContents.Config || m.IsBankSelector).ToDictionary(m => m.CName, m => chain.StageMaps[m.CName]);
            using var rehearsal = ChainLoader.Load(spec, objectPath, chain.Generation, shared);
            return Canaries.Run(rehearsal, stages);
        }

        public void Pin(string generationDirectory, IReadOnlyDictionary<string, string> mapPins)
        {
            chain.Entry.Pin(Path.Combine(generationDirectory, ChainSpec.EntryProgram));
            chain.Chain.Pin(Path.Combine(generationDirectory, ChainSpec.ChainMap));
            chain.Stats.Pin(Path.Combine(generationDirectory, ChainSpec.StatsMap));
            foreach (var (cName, pin) in mapPins)
                chain.StageMaps[cName].Pin(pin);
        }

        public void Dispose() => chain.Dispose();
    }

    private sealed class Map(BpfMap map, bool owned) : IMapAccess
    {
        public PackedEntries ReadAll(int keySize, int valueSize, bool skipZero)
        {
            var all = new PackedEntries(keySize, valueSize);
            var value = new byte[valueSize];
            foreach (var key in map.Keys())
                if (map.TryLookup(key, value) && !(skipZero && !value.AsSpan().ContainsAnyExcept((byte)0)))
                    all.Add(key, value);
            return all;
        }

        public void UpdateMany(PackedEntries entries, Action<int>? progress) =>
            map.UpdateMany(entries.Keys, entries.Values, entries.Count, progress);

        public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value) => map.Update(key, value);

        public void Delete(ReadOnlySpan<byte> key) => map.Delete(key);

        public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value) => map.TryLookup(key, value);

        public void Dispose()
        {
            if (owned)
                map.Dispose();
        }
    }

    private sealed class Link(TcxLink link) : ILinkAccess
    {
        public TcxLinkInfo Info => link.Info;

        public void Update(string programPin, string? expectedProgramPin)
        {
            using var program = BpfProgram.OpenPinned(programPin);
            using var expected = expectedProgramPin is null ? null : BpfProgram.OpenPinned(expectedProgramPin);
            link.Update(program, expected);
        }

        public void Pin(string path) => link.Pin(path);

        public void Dispose() => link.Dispose();
    }
}
