namespace PluginHost.Contract;

/// <summary>
/// A routing strategy: one stage of a pipeline. A plugin only returns data (a template,
/// map schemas, map entries); the host renders, compiles, loads and attaches.
/// Implementations must have a public parameterless constructor.
/// </summary>
public interface IRoutingPlugin
{
    /// <summary>The name that configuration uses to pick this plugin (e.g. <c>SourcePolicy</c>).</summary>
    string Name { get; }

    /// <summary>One line for <c>pluginhost plugins list</c>.</summary>
    string Description { get; }

    /// <summary>
    /// The Scriban template of the stage's C fragment. It must define
    /// <c>static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta)</c>
    /// returning one of the verdict helpers (<c>ph_next()</c>, <c>ph_pass()</c>, <c>ph_drop()</c>,
    /// <c>ph_redirect(rc)</c>). See docs/PLUGINS.md.
    /// </summary>
    StageTemplate Template { get; }

    /// <summary>The BPF maps the stage needs. The host generates their C structs and codecs.</summary>
    IReadOnlyList<MapSchema> Maps { get; }

    /// <summary>
    /// Validate this stage's settings and turn them into map entries and template constants.
    /// Report every problem through <see cref="IStageContext.Error"/>; the host applies nothing
    /// when any stage reported an error.
    /// </summary>
    StageSetup Configure(SettingsNode settings, IStageContext context);
}

/// <summary>Which hook the pipeline runs on.</summary>
public enum Direction
{
    /// <summary>Packets arriving on the interface (a router's forwarding path).</summary>
    Ingress,
    /// <summary>Packets leaving through the interface (locally originated or forwarded).</summary>
    Egress,
}

/// <summary>What the host offers a plugin while it validates its settings.</summary>
public interface IStageContext
{
    /// <summary>The pipeline this stage belongs to.</summary>
    string PipelineName { get; }

    /// <summary>The hook the pipeline is attached to.</summary>
    Direction Direction { get; }

    /// <summary>
    /// Resolve an interface name in the pipeline's network namespace. Returns false, with the
    /// reason in <paramref name="error"/>, when it does not exist or is down.
    /// </summary>
    bool TryResolveInterface(string name, out int ifindex, out string error);

    /// <summary>An absolute path for a path given in settings: relative paths are relative to the configuration file.</summary>
    string ResolvePath(string path);

    /// <summary>Report a problem with one settings value; the host adds the file and line.</summary>
    void Error(SettingsNode node, string message);
}

/// <summary>What a stage's validated settings become: map entries and template constants.</summary>
/// <param name="Entries">Entries to write into the stage's maps.</param>
/// <param name="Constants">Typed numbers exposed to the template as <c>constants.NAME</c>.</param>
public sealed record StageSetup(IReadOnlyList<MapEntry> Entries, IReadOnlyDictionary<string, long> Constants)
{
    /// <summary>
    /// Packets the host runs through a new generation (BPF_PROG_TEST_RUN) before it goes live; a
    /// verdict other than the expected one refuses the reload. Keep it to a handful.
    /// </summary>
    public IReadOnlyList<CanaryPacket> Canaries { get; init; } = [];

    /// <summary>Entries in compact form, for large tables; written together with <see cref="Entries"/>.</summary>
    public IReadOnlyList<EntryTable> Tables { get; init; } = [];

    /// <summary>A setup with no entries and no constants.</summary>
    public static StageSetup Empty { get; } = new([], new Dictionary<string, long>());
}
