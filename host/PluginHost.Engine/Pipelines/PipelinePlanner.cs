using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Net;
using PluginHost.Plugins;

namespace PluginHost.Pipelines;

/// <summary>A pipeline ready to build: everything host-owned, nothing of the plugins' types kept.</summary>
/// <param name="StageEntries">For each stage: its maps' desired entries (by map name), encoded and packed.</param>
public sealed record PlannedPipeline(PipelineConfig Config, int Ifindex, PipelinePlan Plan, IReadOnlyList<IReadOnlyDictionary<string, PackedEntries>> StageEntries)
{
    /// <summary>Desired entries over all stages and maps.</summary>
    public int EntryCount => StageEntries.Sum(s => s.Values.Sum(p => p.Count));

    /// <summary>The interfaces the pipeline uses in its namespace (its hook and every output), by name, with the ifindex each had (0: none).</summary>
    public IReadOnlyDictionary<string, int> Interfaces { get; init; } = new Dictionary<string, int>();

    /// <summary>Outputs that were missing or down: their routes are written with ifindex 0 (the kernel routes their packets).</summary>
    public IReadOnlyList<Withdrawal> Withdrawn { get; init; } = [];

    /// <summary>What <c>validate</c> says besides errors (withdrawn routes), located like errors.</summary>
    public IReadOnlyList<ConfigError> Warnings { get; init; } = [];
}

/// <summary>The routes (rules, next hops) of one pipeline that send out of an interface that cannot carry them now.</summary>
/// <param name="Reason">"interface 'up2' does not exist", "interface 'up2' is down".</param>
public sealed record Withdrawal(string Interface, string Reason, int Routes);

/// <summary>
/// Validates every pipeline against the loaded plugins (each plugin checks its own settings) and
/// turns the result into plans. All problems are collected; any problem means nothing is planned.
/// </summary>
internal static class PipelinePlanner
{
    /// <param name="calls">How plugin code is called: with a time limit and, for an apply, an in-flight record
    /// (see <see cref="PluginCalls"/>); null: with the configured limit and no record (validate).</param>
    /// <param name="lastGood">Stages' last good plans, kept and used when a plugin fails on settings it accepted before.</param>
    /// <param name="probes">The running host's probe states, which stages read while they configure; null: all Unknown (validate).</param>
    public static IReadOnlyList<PlannedPipeline> Plan(HostConfig config, PluginCatalog catalog, PluginCalls? calls = null, LastGoodStages? lastGood = null,
        Health.HealthProbes? probes = null)
    {
        calls ??= new PluginCalls(config.RuntimeDirectory, config.PluginCallTimeout, record: false);
        lastGood ??= new LastGoodStages();
        var quarantined = calls.Quarantined();
        // A plugin that failed to load fails the stages that use it (below); folders nobody names block nothing.
        var errors = new List<ConfigError>();

        var planned = new List<PlannedPipeline>();
        foreach (var pipeline in config.Pipelines)
        {
            // Interface names mean something only inside the pipeline's namespace, so validate there.
            var result = NamespaceScope.Run(pipeline.Namespace, () => PlanOne(config, pipeline, catalog, errors, calls, quarantined, lastGood, probes));
            if (result is not null)
                planned.Add(result);
        }
        if (errors.Count > 0)
            throw new ConfigException(errors);
        return planned;
    }

    private static PlannedPipeline? PlanOne(HostConfig config, PipelineConfig pipeline, PluginCatalog catalog, List<ConfigError> errors,
        PluginCalls calls, IReadOnlyList<QuarantinedPlugin> quarantined, LastGoodStages lastGood, Health.HealthProbes? probes)
    {
        int before = errors.Count;
        void Error(SettingsNode node, string message) =>
            errors.Add(new ConfigError(config.SourcePath, node.Line, node.Path, message));

        int ifindex = 0;
        if (!Interfaces.TryResolve(pipeline.Interface, out ifindex, out string ifError))
            Error(pipeline.Node["interface"], ifError + (pipeline.Namespace is null ? "" : $" in network namespace {pipeline.Namespace}"));

        var outputs = new OutputView(pipeline);
        outputs.Use(pipeline.Interface, ifindex);
        var stages = new List<StagePlan>();
        var entries = new List<IReadOnlyDictionary<string, PackedEntries>>();
        foreach (var stage in pipeline.Stages)
        {
            if (!catalog.Plugins.TryGetValue(stage.Plugin, out var loaded))
            {
                Error(stage.Node["plugin"], catalog.Failed.GetValueOrDefault(stage.Plugin) ?? $"load plugin {stage.Plugin}: not loaded");
                continue;
            }
            var plugin = loaded.Instance;
            var build = PluginCalls.Build(stage.Plugin, loaded.AssemblyPath);
            string stageKey = LastGoodStages.KeyOf(build.Sha256, stage.Settings);
            // A stage whose plugin fails on settings it accepted before keeps its last good plan: only its own changes wait.
            bool KeepLastGood(string why)
            {
                if (!lastGood.TryGet(pipeline.Name, stages.Count, stageKey, out var plan, out var kept))
                    return false;
                stages.Add(plan);
                entries.Add(kept);
                outputs.Warn(stage.Node, $"{why}; the stage keeps its last good settings");
                return true;
            }
            if (quarantined.FirstOrDefault(q => q.Plugin == build.Plugin && q.Sha256 == build.Sha256) is { } q)
            {
                string why = $"plugin {q.Plugin} is quarantined: a host died in its {q.Call} ({q.Since:u}; " +
                    $"{Path.GetFileName(q.Dll)} sha256 {q.Sha256[..Math.Min(12, q.Sha256.Length)]}…): drop in a new build, or remove it from {calls.QuarantineFile} to try this one again";
                if (!KeepLastGood(why))
                    Error(stage.Node["plugin"], why);
                continue;
            }
            // A call abandoned at its time limit may still report errors from its own thread: they no longer count.
            var gate = new CallGate();
            int stageIndex = stages.Count;
            var context = new StageContext(pipeline, config.Confinement,
                (node, message) => { if (gate.Open) Error(node, message); }, outputs,
                name => probes?.StateOf(pipeline.Name, stageIndex, name) ?? default);
            StageSetup setup;
            try
            {
                setup = calls.Run(build, "Configure", pipeline.Namespace, () => plugin.Configure(stage.Settings, context));
            }
            catch (PluginTimeoutException e)
            {
                gate.Open = false;
                if (!KeepLastGood(e.Message))
                    Error(stage.Node, e.Message);
                continue;
            }
            catch (Exception e)
            {
                string why = $"plugin {stage.Plugin} failed to validate its settings: {e.GetType().Name}: {e.Message}";
                if (!KeepLastGood(why))
                    Error(stage.Node, why);
                continue;
            }
            // Encode every entry now: a bad entry is a config error, not a half-applied map, and the bytes are
            // what the maps get (no plugin object is kept).
            var schemas = Sized(loaded, setup, stage.Node, Error);
            var maps = schemas.Select(m => new StageMap(stages.Count, "check", m)).ToDictionary(m => m.Schema.Name);
            // Sized once for all the stage gives a map: a large table is copied in once, not again at each doubling.
            var counts = setup.Entries.GroupBy(e => e.Map).ToDictionary(g => g.Key, g => g.Count());
            foreach (var table in setup.Tables)
                counts[table.Map] = counts.GetValueOrDefault(table.Map) + table.Count;
            var packed = maps.Values.ToDictionary(m => m.Schema.Name,
                m => new PackedEntries(m.Key.Size, m.Value.Size, (int)Math.Min(counts.GetValueOrDefault(m.Schema.Name), m.Schema.MaxEntries)));
            foreach (var entry in setup.Entries)
            {
                try
                {
                    var map = maps.TryGetValue(entry.Map, out var m) ? m : throw new FormatException($"no map named '{entry.Map}'");
                    packed[entry.Map].Add(map.Key, entry.Key, map.Value, entry.Value);
                }
                catch (FormatException e)
                {
                    Error(stage.Node, $"plugin {loaded.Name} produced an entry its schema refuses: {e.Message}");
                }
            }
            foreach (var table in setup.Tables)
            {
                try
                {
                    var map = maps.TryGetValue(table.Map, out var m) ? m : throw new FormatException($"no map named '{table.Map}'");
                    packed[table.Map].AddRange(PackedTables.Encode(table, map));
                }
                catch (FormatException e)
                {
                    Error(stage.Node, $"plugin {loaded.Name} produced a table its schema refuses: {e.Message}");
                }
            }
            // Copy out of the plugin: the plan must not keep plugin objects alive past this pass
            // (the migration delegate is used only while the catalog that owns the plugin is open).
            var migration = plugin as IMapMigration;
            foreach (var (name, entriesOf) in packed.Where(p => (uint)p.Value.Count > maps[p.Key].Schema.MaxEntries))
                Error(stage.Node, $"plugin {loaded.Name} produced {entriesOf.Count} entries for map '{name}', which holds {maps[name].Schema.MaxEntries}");
            stages.Add(new StagePlan(loaded.Name, loaded.Template, schemas,
                new Dictionary<string, long>(setup.Constants))
            {
                Canaries = setup.Canaries.Select(c => c with { Frame = c.Frame.ToArray() }).ToList(),
                Summary = setup.Summary is { } summary ? Config.ConfigText.Cut(summary, 400) : null,
                ItemCounters = CheckedItemCounters(loaded.Name, setup, maps, stage.Node, Error),
                Probes = Health.ProbeRules.Checked(loaded.Name, setup.Probes, stage.Node, Error),
                Migrate = migration is null ? null : migration.Migrate,
                Build = new StageBuild(loaded.InformationalVersion, build.Sha256),
            });
            entries.Add(packed);
            lastGood.Remember(pipeline.Name, stages.Count - 1, stageKey, stages[^1], packed);
        }
        if (errors.Count > before)
            return null;
        var plan = new PipelinePlan(pipeline.Name, pipeline.Direction, stages);
        return new PlannedPipeline(pipeline, ifindex, plan, entries)
        {
            Interfaces = outputs.Used,
            Withdrawn = outputs.Withdrawn(),
            Warnings = outputs.Warnings(config.SourcePath),
        };
    }

    private sealed class CallGate
    {
        private volatile bool _open = true;

        public bool Open { get => _open; set => _open = value; }
    }

    /// <summary>
    /// The output interfaces of one pipeline as its stages resolve them, in its namespace: each looked up once, the
    /// prefixes each reaches directly read once (for next hops), and the routes that had to be withdrawn, by interface
    /// and by where the settings named them.
    /// </summary>
    private sealed class OutputView(PipelineConfig pipeline)
    {
        private readonly Dictionary<string, InterfaceLookup> _lookups = [];
        private readonly Dictionary<string, int> _used = [];
        private readonly Dictionary<string, (string Reason, int Routes)> _withdrawn = [];
        private readonly Dictionary<(string Path, string Interface), (SettingsNode Node, string Reason, int Routes)> _located = [];
        private Dictionary<string, List<Subnet>>? _subnets;
        private readonly Dictionary<(string, System.Net.IPAddress), string?> _nextHops = [];

        public IReadOnlyDictionary<string, int> Used => _used;

        public void Use(string name, int ifindex) => _used.TryAdd(name, ifindex);

        public OutputInterface Resolve(SettingsNode node, string name, System.Net.IPAddress? via, int routes)
        {
            if (!_lookups.TryGetValue(name, out var found))
                _lookups[name] = found = Net.Interfaces.Lookup(name);
            if (found.Condition == InterfaceCondition.Invalid)
                return new OutputInterface(0, InterfaceError: found.Problem);
            _used[name] = found.Ifindex;
            string? reason = found.Problem;
            if (reason is null && via is not null)
            {
                if (!_nextHops.TryGetValue((name, via), out var offLink))
                    _nextHops[(name, via)] = offLink = CheckNextHop(name, via);
                if (offLink is not null)
                    return new OutputInterface(0, NextHopError: offLink);
            }
            if (reason is null)
                return new OutputInterface(found.Ifindex);
            if (pipeline.Namespace is not null)
                reason += $" in network namespace {pipeline.Namespace}";
            var total = _withdrawn.TryGetValue(name, out var t) ? t : (Reason: reason, Routes: 0);
            _withdrawn[name] = (total.Reason, total.Routes + routes);
            var here = _located.TryGetValue((node.Path, name), out var h) ? h : (Node: node, Reason: reason, Routes: 0);
            _located[(node.Path, name)] = (here.Node, here.Reason, here.Routes + routes);
            return new OutputInterface(0);
        }

        // Routes 0: a plugin checking whether a cached table still holds (it then reports the table's counts).
        // A next hop outside every prefix the interface reaches directly is a mistake (it would sit at an incomplete neighbour).
        // An interface with no address or direct route of the family (unnumbered, or still being configured) cannot be judged:
        // the next hop is taken as given, and checked again when an address appears (which re-applies).
        private string? CheckNextHop(string name, System.Net.IPAddress via)
        {
            _subnets ??= OnLink.ReadAll();
            var subnets = _subnets.GetValueOrDefault(name) ?? [];
            return OnLink.HasAny(subnets, via.AddressFamily) ? OnLink.Problem(via, name, subnets) : null;
        }

        public List<Withdrawal> Withdrawn() => _withdrawn.Where(w => w.Value.Routes > 0).Select(w => new Withdrawal(w.Key, w.Value.Reason, w.Value.Routes)).ToList();

        private readonly List<(SettingsNode Node, string Message)> _other = [];

        /// <summary>A warning about a stage, located like an error (a stage kept on its last good plan).</summary>
        public void Warn(SettingsNode node, string message) => _other.Add((node, message));

        public List<ConfigError> Warnings(string file) => _located.Values.Where(w => w.Routes > 0)
            .Select(w => new ConfigError(file, w.Node.Line, w.Node.Path,
                $"{w.Reason}: {Routes(w.Routes)} withdrawn until it is up (the kernel routes {(w.Routes == 1 ? "its" : "their")} packets)"))
            .Concat(_other.Select(o => new ConfigError(file, o.Node.Line, o.Node.Path, o.Message)))
            .ToList();

        public static string Routes(int n) => n == 1 ? "1 route" : $"{n:N0} routes";
    }

    // Item counters that name an element of a State array map with U64 packets and bytes (and a U32 tag when tagged).
    private static List<ItemCounter> CheckedItemCounters(string plugin, StageSetup setup, Dictionary<string, StageMap> maps, SettingsNode node,
        Action<SettingsNode, string> error)
    {
        var ok = new List<ItemCounter>();
        foreach (var c in setup.ItemCounters ?? [])
        {
            string? problem = c is null ? "a null item counter"
                : !maps.TryGetValue(c.Map, out var map) ? $"item counter of '{c.Item}' names map '{c.Map}', which it does not have"
                : map.Schema.Contents != MapContents.State || map.Schema.Kind != MapKind.Array ? $"item counter of '{c.Item}': map '{c.Map}' is not a State array"
                : c.Index >= map.Schema.MaxEntries ? $"item counter of '{c.Item}': index {c.Index} is past map '{c.Map}''s {map.Schema.MaxEntries} entries"
                : !HasField(map, "packets", FieldType.U64) || !HasField(map, "bytes", FieldType.U64) || (c.Tag != 0 && !HasField(map, "tag", FieldType.U32))
                    ? $"item counter of '{c.Item}': map '{c.Map}' needs U64 fields packets and bytes{(c.Tag != 0 ? " and a U32 tag" : "")}"
                : (c.Fields ?? []).FirstOrDefault(f => f is null || f is "packets" or "bytes" || !HasField(map, f, FieldType.U64)) is { } bad
                    ? $"item counter of '{c.Item}': field '{bad}' is not a further U64 field of map '{c.Map}'"
                : null;
            if (problem is null)
                ok.Add(c!);
            else
                error(node, $"plugin {plugin} produced {problem}");
        }
        return ok;

        static bool HasField(StageMap map, string name, FieldType type) => map.Schema.Value.Any(f => f.Name == name && f.Type == type);
    }

    /// <summary>Largest capacity a plugin may give one map of one stage (<see cref="StageSetup.MapSizes"/>).</summary>
    public const uint MaxMapEntries = 1u << 26;

    // The plugin's schemas with this stage's capacities (StageSetup.MapSizes) in place of the declared ones.
    private static List<MapSchema> Sized(LoadedPlugin loaded, StageSetup setup, SettingsNode node, Action<SettingsNode, string> error)
    {
        var sizes = setup.MapSizes ?? new Dictionary<string, uint>();
        foreach (var (name, size) in sizes)
        {
            if (loaded.Maps.All(m => m.Name != name))
                error(node, $"plugin {loaded.Name} sized map '{name}', which it does not have");
            else if (size is 0 or > MaxMapEntries)
                error(node, $"plugin {loaded.Name} sized map '{name}' to {size} entries: expected 1 to {MaxMapEntries}");
        }
        return loaded.Maps.Select(m => sizes.TryGetValue(m.Name, out uint size) && size is > 0 and <= MaxMapEntries ? m with { MaxEntries = size } : m).ToList();
    }

    private sealed class StageContext(PipelineConfig pipeline, PathConfinement confinement, Action<SettingsNode, string> error, OutputView outputs,
        Func<string, ProbeState> probeState) : IStageContext
    {
        public ProbeState ProbeState(string name) => probeState(name);

        public OutputInterface ResolveOutput(SettingsNode node, string name, System.Net.IPAddress? via = null, int routes = 1) =>
            outputs.Resolve(node, name, via, routes);

        public string PipelineName => pipeline.Name;

        public Direction Direction => pipeline.Direction;

        private readonly Dictionary<string, (bool Ok, int Ifindex, string Message)> _interfaces = [];

        public bool TryResolveInterface(string name, out int ifindex, out string message)
        {
            if (_interfaces.TryGetValue(name, out var known))
            {
                (ifindex, message) = (known.Ifindex, known.Message);
                return known.Ok;
            }
            bool ok = Interfaces.TryResolve(name, out ifindex, out message);
            if (!ok && pipeline.Namespace is not null)
                message += $" in network namespace {pipeline.Namespace}";
            _interfaces[name] = (ok, ifindex, message);
            return ok;
        }

        // Confined to the configuration's directory and allowedPaths, symlinks resolved: UnauthorizedAccessException otherwise.
        public string ResolvePath(string path) => confinement.Resolve(path);

        public void Error(SettingsNode node, string message) => error(node, message);

        public void Warn(SettingsNode node, string message) => outputs.Warn(node, message);
    }
}
