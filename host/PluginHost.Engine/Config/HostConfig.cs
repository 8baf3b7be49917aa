using PluginHost.Contract;

namespace PluginHost.Config;

/// <summary>The whole configuration, immutable once loaded. Paths are absolute.</summary>
public sealed record HostConfig(
    string SourcePath,
    string PluginsDirectory,
    string BpfRoot,
    string RuntimeDirectory,
    string CacheDirectory,
    IReadOnlyList<PipelineConfig> Pipelines)
{
    /// <summary>A group allowed to use the control socket (mode 0660 instead of 0600); null = root only.</summary>
    public string? ApiGroup { get; init; }

    /// <summary>Where /metrics listens (host:port), or null: off.</summary>
    public string? MetricsListen { get; init; }

    /// <summary>How long one call into plugin code (settings validation, a migration) may take before it is abandoned.</summary>
    public TimeSpan PluginCallTimeout { get; init; } = DefaultPluginCallTimeout;

    public static readonly TimeSpan DefaultPluginCallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Directories that paths in settings and runtime commands (<c>routesFile:</c>, <c>route load FILE</c>) may name, symlinks
    /// resolved: the configuration's directory, then <c>allowedPaths:</c>. Anything else is refused (<see cref="PathConfinement"/>).
    /// </summary>
    public IReadOnlyList<string> AllowedPaths { get; init; } = [];

    /// <summary>Where a stage's files may be: <see cref="AllowedPaths"/>, or the configuration's directory alone when none are set.</summary>
    public PathConfinement Confinement => new(Path.GetDirectoryName(SourcePath)!, AllowedPaths);

    /// <summary>The control socket: owner root, mode 0600 (0660 with <see cref="ApiGroup"/>).</summary>
    public string ControlSocket => ControlSocketIn(RuntimeDirectory);

    public static string ControlSocketIn(string runtimeDirectory) => Path.Combine(runtimeDirectory, "api", "pluginhost.sock");

    public const string DefaultBpfRoot = "/sys/fs/bpf/pluginhost";
    public const string DefaultRuntimeDirectory = "/run/pluginhost";
    public const string DefaultCacheDirectory = "/var/cache/pluginhost";
}

/// <summary>One attachment point and its ordered stages.</summary>
public sealed record PipelineConfig(
    string Name,
    string Interface,
    Direction Direction,
    string? Namespace,
    IReadOnlyList<StageConfig> Stages,
    SettingsNode Node)
{
    /// <summary>The tc hook this pipeline's link attaches to.</summary>
    public Kernel.TcxHook Hook => Direction == Direction.Ingress ? Kernel.TcxHook.Ingress : Kernel.TcxHook.Egress;
}

/// <summary>One stage: which plugin, with which settings.</summary>
public sealed record StageConfig(string Plugin, SettingsNode Settings, SettingsNode Node);

/// <summary>One problem in the configuration, located by file, line and field path.
/// Echoed values are cut (<see cref="ConfigText.CutQuoted"/>): whoever wrote the message, it stays a few hundred characters.</summary>
public sealed record ConfigError(string File, int Line, string FieldPath, string Message)
{
    public string FieldPath { get; init; } = ConfigText.Cut(FieldPath, 2 * ConfigText.MaxShown);

    public string Message { get; init; } = ConfigText.CutQuoted(Message);

    public override string ToString() =>
        $"{File}{(Line > 0 ? $":{Line}" : "")}: {FieldPath}: {Message}";
}

/// <summary>The configuration has problems; nothing was applied.</summary>
/// <param name="action">What was refused, for the message: "validate configuration", or a runtime command ("run 'route load'").</param>
public sealed class ConfigException(IReadOnlyList<ConfigError> errors, string action = "validate configuration")
    : HostException($"{action}: {errors.Count} problem{(errors.Count == 1 ? "" : "s")}:\n" + string.Join('\n', InFileOrder(errors).Select(e => "  " + e)))
{
    public IReadOnlyList<ConfigError> Errors { get; } = InFileOrder(errors);

    private static List<ConfigError> InFileOrder(IReadOnlyList<ConfigError> errors) =>
        errors.OrderBy(e => e.File, StringComparer.Ordinal).ThenBy(e => e.Line).ToList();
}
