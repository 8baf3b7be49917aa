using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Observe;
using PluginHost.Plugins;

namespace PluginHost.Testing;

/// <summary>
/// One or more plugin stages as the host would run them, loaded through the verifier and attached to nothing: settings
/// validated by the plugin, the chain rendered, compiled with clang-19, loaded with libbpf and its canaries run under
/// BPF_PROG_TEST_RUN (what <c>pluginhost plugin check</c> does). Then <see cref="Run"/> sends any frame through the entry
/// program and says what the chain decided. Needs root (or CAP_BPF and CAP_NET_ADMIN), clang-19 and libbpf1.
/// Dispose it to close the kernel objects.
/// </summary>
public sealed class TestChain : IDisposable
{
    private readonly ILoadedGeneration _loaded;
    private readonly LoadedChain _chain;

    private TestChain(ILoadedGeneration loaded, PipelineCheck check, IReadOnlyList<string> warnings)
    {
        _loaded = loaded;
        _chain = loaded.Chain ?? throw new InvalidOperationException("load test chain: the kernel gave no chain to run frames through");
        Canaries = check.Canaries;
        Shadowed = check.Shadowed;
        Programs = check.Programs.Select(p => $"{p.Program}: {p.Instructions} instructions").ToList();
        Warnings = warnings;
    }

    /// <summary>Load one stage: <paramref name="plugin"/> (an object of the test's own process) with <paramref name="settings"/>,
    /// the YAML its stage has under <c>settings:</c> in a configuration.</summary>
    /// <exception cref="TestChainException">The settings, the template, clang, the verifier or a canary refused it; the message says which.</exception>
    public static TestChain Load(IRoutingPlugin plugin, string settings, TestChainOptions? options = null) =>
        LoadChain([TestStage.Of(plugin, settings)], options);

    /// <summary>Load one stage from a built plugin DLL (its file name is the plugin's name), as the host loads a drop-in.</summary>
    /// <exception cref="TestChainException">As for <see cref="Load"/>, or the DLL did not load.</exception>
    public static TestChain LoadDll(string pluginDll, string settings, TestChainOptions? options = null) =>
        LoadChain([TestStage.FromDll(pluginDll, settings)], options);

    /// <summary>Load a chain of stages, in order (a packet the first hands on with <c>ph_next()</c> reaches the second).
    /// Stages are all plugin objects or all DLLs.</summary>
    /// <exception cref="TestChainException">As for <see cref="Load"/>.</exception>
    public static TestChain LoadChain(IReadOnlyList<TestStage> stages, TestChainOptions? options = null)
    {
        options ??= new TestChainOptions();
        if (stages.Count == 0)
            throw new ArgumentException("load test chain: no stages", nameof(stages));
        string scratch = Directory.CreateTempSubdirectory("pluginhost-testing-").FullName;
        try
        {
            using var catalog = Catalog(stages, scratch);
            var failed = catalog.Failed.Values.ToList();
            if (failed.Count > 0)
                throw new TestChainException($"load test chain: {string.Join("; ", failed)}");
            var names = stages.Select(s => s.Plugin?.Name ?? Path.GetFileNameWithoutExtension(s.PluginDll!)).ToList();
            string source = Path.Combine(Path.GetFullPath(options.SettingsDirectory ?? Environment.CurrentDirectory), "settings.yaml");
            var stageConfigs = stages.Select((s, i) => new StageConfig(names[i], PluginCheck.ParseSettings(s.Settings, source, "load test chain: settings"),
                new SettingsNode($"stages[{i}]", 0, SettingsKind.Mapping))).ToList();
            var config = PluginCheck.Config(source, catalog.Directory, scratch, options.CacheDirectory ?? DefaultCache, options.Interface,
                options.Direction, stageConfigs);
            var compiler = new ClangCompiler(config.CacheDirectory, options.Clang);
            var planned = PluginCheck.Plan(config, catalog, $"load test chain {string.Join(" → ", names)}");
            var (loaded, check) = OfflineCheck.Load(planned, compiler, BpfDatapathKernel.Instance);
            return new TestChain(loaded, check, planned.Warnings.Select(w => w.ToString()).ToList());
        }
        catch (HostException e)
        {
            throw new TestChainException(e.Message.StartsWith("load test chain", StringComparison.Ordinal) ? e.Message : $"load test chain: {e.Message}", e);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    // Compiled objects outlive a test run: the same chain is compiled once per machine, not once per test.
    private static string DefaultCache => Path.Combine(Path.GetTempPath(), "pluginhost-testing-cache");

    // Plugin objects are used as they are; DLLs are copied into NAME/NAME.dll, the folder the host would load them from.
    private static PluginCatalog Catalog(IReadOnlyList<TestStage> stages, string scratch)
    {
        if (stages.All(s => s.Plugin is not null))
            return PluginCatalog.InProcess(stages.Select(s => s.Plugin!).Distinct());
        if (stages.Any(s => s.Plugin is not null))
            throw new ArgumentException("load test chain: stages are all plugin objects or all DLLs", nameof(stages));
        string plugins = Path.Combine(scratch, "plugins");
        foreach (var dll in stages.Select(s => Path.GetFullPath(s.PluginDll!)).Distinct())
        {
            if (!File.Exists(dll))
                throw new TestChainException($"load test chain: no such plugin DLL {dll}");
            string name = Path.GetFileNameWithoutExtension(dll);
            string folder = Directory.CreateDirectory(Path.Combine(plugins, name)).FullName;
            foreach (var file in new[] { ".dll", ".pdb", ".deps.json" }.Select(e => Path.ChangeExtension(dll, e)).Where(File.Exists))
                File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        }
        return PluginCatalog.Load(plugins, stages.Select(s => Path.GetFileNameWithoutExtension(s.PluginDll!)));
    }

    /// <summary>The canaries checked while loading, one line each with the verdict it came out with.</summary>
    public IReadOnlyList<string> Canaries { get; }

    /// <summary>Canaries an earlier stage decided first (in a chain).</summary>
    public IReadOnlyList<string> Shadowed { get; }

    /// <summary>The verified programs, entry first: "ph_entry: 812 instructions".</summary>
    public IReadOnlyList<string> Programs { get; }

    /// <summary>What validation said besides errors: warnings the plugin gave (<see cref="IStageContext.Warn"/>), withdrawn outputs.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>Send <paramref name="frame"/> (a whole Ethernet frame, see <see cref="Frame"/>) through the chain once.</summary>
    public FrameResult Run(byte[] frame)
    {
        var run = _chain.Entry.TestRun(frame);
        var (verdict, ifindex) = Datapath.Canaries.Verdict(run);
        return new FrameResult(Enum.IsDefined(verdict) ? verdict : null, ifindex, run.Output, run.ReturnValue);
    }

    /// <summary>The counters of stage <paramref name="stage"/> so far, by their <c>stats --json</c> names (redirected, dropped,
    /// passed, matched, targetDown, ...). Canaries are not counted.</summary>
    public IReadOnlyDictionary<string, ulong> StageCounters(int stage = 0)
    {
        var row = _chain.ReadCounters().Stages[stage].Counters;
        return CounterRow<StageCounter>.All.ToDictionary(CounterLayout.JsonName, c => row[c]);
    }

    /// <summary>The entry program's counters so far (packets, passNonIp, ...), by their <c>stats --json</c> names.</summary>
    public IReadOnlyDictionary<string, ulong> EntryCounters()
    {
        var row = _chain.ReadCounters().Entry;
        return CounterRow<EntryCounter>.All.ToDictionary(CounterLayout.JsonName, c => row[c]);
    }

    /// <summary>Zero every counter.</summary>
    public void ResetCounters() => CounterReader.Clear(_chain.Stats, _chain.Spec.StatsRows);

    /// <summary>
    /// The entries of stage <paramref name="stage"/>'s map <paramref name="map"/> (its name in the schema), decoded as
    /// <see cref="MapEntry"/> values are written: integers as <see cref="ulong"/>, addresses as <see cref="System.Net.IPAddress"/>.
    /// Array elements whose value is all zero are left out. A double-buffered map shows the copy in use.
    /// </summary>
    public IReadOnlyList<MapEntry> MapEntries(string map, int stage = 0)
    {
        var maps = _chain.Spec.Stages[stage].Maps.Where(m => m.Schema.Name == map && !m.IsBankSelector).ToList();
        if (maps.Count == 0)
            throw new ArgumentException($"read map {map}: stage {stage} ({_chain.Spec.Stages[stage].PluginName}) has no such map", nameof(map));
        var bank = _chain.Spec.Stages[stage].Maps.FirstOrDefault(m => m.IsBankSelector);
        var chosen = maps.Count > 1 && bank is not null && BankInUse(bank) == 1 ? maps.Single(m => m.SecondCopy) : maps.First(m => !m.SecondCopy);
        using var access = _loaded.Map(chosen.CName);
        var packed = access.ReadAll(chosen.Key.Size, chosen.Value.Size, skipZero: chosen.Schema.Kind is MapKind.Array or MapKind.PerCpuArray);
        return Enumerable.Range(0, packed.Count).Select(i => new MapEntry(map, chosen.Key.Decode(packed.Key(i)), chosen.Value.Decode(packed.Value(i)))).ToList();
    }

    private uint BankInUse(StageMap bank)
    {
        using var access = _loaded.Map(bank.CName);
        Span<byte> value = stackalloc byte[bank.Value.Size];
        return access.TryLookup(new byte[bank.Key.Size], value) ? BitConverter.ToUInt32(value) : 0;
    }

    /// <summary>Close the chain's programs and maps.</summary>
    public void Dispose() => _loaded.Dispose();
}

/// <summary>One stage of a <see cref="TestChain"/>: a plugin object or a built DLL, and its settings (YAML).</summary>
public sealed record TestStage
{
    private TestStage(IRoutingPlugin? plugin, string? pluginDll, string settings) => (Plugin, PluginDll, Settings) = (plugin, pluginDll, settings);

    /// <summary>The plugin object, when the stage runs one of the test's own.</summary>
    public IRoutingPlugin? Plugin { get; }

    /// <summary>The plugin DLL, when the stage loads one as the host does.</summary>
    public string? PluginDll { get; }

    /// <summary>The stage's settings: what it has under <c>settings:</c> in a configuration.</summary>
    public string Settings { get; }

    /// <summary>A stage running <paramref name="plugin"/>, an object of the test's own process.</summary>
    public static TestStage Of(IRoutingPlugin plugin, string settings) => new(plugin ?? throw new ArgumentNullException(nameof(plugin)), null, settings);

    /// <summary>A stage loading <paramref name="pluginDll"/> as the host loads a drop-in (its file name is the plugin's name).</summary>
    public static TestStage FromDll(string pluginDll, string settings) => new(null, pluginDll ?? throw new ArgumentNullException(nameof(pluginDll)), settings);
}

/// <summary>Where the test chain pretends to run, and with which tools.</summary>
/// <param name="Interface">The pipeline's interface (it must exist; nothing is attached to it).</param>
/// <param name="Direction">The hook: ingress chains decrement TTL on redirect, egress ones do not.</param>
/// <param name="SettingsDirectory">What relative paths in settings are relative to (the configuration's directory); the current directory when null.</param>
/// <param name="Clang">The compiler.</param>
/// <param name="CacheDirectory">Where compiled objects are kept; a directory under the system's temporary directory when null.</param>
public sealed record TestChainOptions(string Interface = "lo", Direction Direction = Direction.Ingress, string? SettingsDirectory = null,
    string Clang = "clang-19", string? CacheDirectory = null);

/// <summary>What the chain did with one frame.</summary>
/// <param name="Verdict">Pass, drop or redirect; null for a return code the chain never gives (see <paramref name="ReturnCode"/>).</param>
/// <param name="RedirectIfindex">For a redirect: the interface the packet was sent out of (the test run does not send it).</param>
/// <param name="Output">The frame as the chain left it (a redirect on ingress has decremented the TTL, say).</param>
/// <param name="ReturnCode">The tc return code: TCX_NEXT (-1), TC_ACT_SHOT (2), TC_ACT_REDIRECT (7).</param>
public sealed record FrameResult(CanaryVerdict? Verdict, int RedirectIfindex, byte[] Output, int ReturnCode)
{
    /// <summary>Throws <see cref="FrameAssertionException"/> unless the frame was handed to the kernel.</summary>
    public FrameResult ExpectPass() => Expect(CanaryVerdict.Pass, 0);

    /// <summary>Throws <see cref="FrameAssertionException"/> unless the frame was dropped.</summary>
    public FrameResult ExpectDrop() => Expect(CanaryVerdict.Drop, 0);

    /// <summary>Throws <see cref="FrameAssertionException"/> unless the frame was redirected to <paramref name="ifindex"/>.</summary>
    public FrameResult ExpectRedirect(int ifindex) => Expect(CanaryVerdict.Redirect, ifindex);

    private FrameResult Expect(CanaryVerdict verdict, int ifindex) =>
        Verdict == verdict && RedirectIfindex == ifindex ? this
            : throw new FrameAssertionException($"check frame verdict: expected {Datapath.Canaries.Describe(verdict, ifindex)}, got {this}");

    /// <summary>"pass", "drop", "redirect to ifindex 3", or the return code.</summary>
    public override string ToString() =>
        Verdict is { } v ? Datapath.Canaries.Describe(v, RedirectIfindex) : $"return code {ReturnCode}";
}

/// <summary>A frame did not come out of the chain as the test expected.</summary>
public sealed class FrameAssertionException(string message) : Exception(message);

/// <summary>The chain did not load: its settings, template, the compiler, the verifier or a canary refused it.</summary>
public sealed class TestChainException(string message, Exception? inner = null) : Exception(message, inner);
