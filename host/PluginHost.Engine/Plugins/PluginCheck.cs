using PluginHost.Compile;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Pipelines;

namespace PluginHost.Plugins;

/// <summary>
/// <c>pluginhost plugin check DIR --settings FILE</c>: one plugin, offline. <c>DIR</c> is the plugin's own folder, as it
/// is dropped into the plugins directory: named after the plugin (the name configuration uses) and holding
/// <c>NAME.dll</c>. The plugin is loaded as the host loads it (trust checks included), its settings validated as one
/// stage of a pipeline on <c>interface</c> (output interfaces that do not exist here are withdrawn, as in a host, and
/// reported as warnings), then the chain is compiled, verified and its canaries run (<see cref="OfflineCheck"/>).
/// </summary>
public static class PluginCheck
{
    public const string Pipeline = "check";

    public static PluginCheckResult Run(string pluginDirectory, string? settingsFile, string hookInterface, Direction direction, ClangCompiler compiler)
    {
        string folder = Path.TrimEndingDirectorySeparator(Path.GetFullPath(pluginDirectory));
        string name = Path.GetFileName(folder);
        if (!Directory.Exists(folder))
            throw new PluginCheckException($"check plugin {name}: no such directory {folder}");
        string dll = Path.Combine(folder, name + ".dll");
        if (!File.Exists(dll))
        {
            var found = Directory.GetFiles(folder, "*.dll").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            throw new PluginCheckException($"check plugin {name}: no {name}.dll in {folder} (a plugin's folder and DLL carry its name, the one " +
                $"configuration uses: copy the build output into a folder named after it; DLLs here: {(found.Count == 0 ? "none" : string.Join(", ", found))})");
        }
        string source = settingsFile is null ? Path.Combine(folder, "(no settings)") : Path.GetFullPath(settingsFile);
        var stage = new StageConfig(name, settingsFile is null ? new SettingsNode("settings", 0, SettingsKind.Missing) : ReadSettings(source),
            new SettingsNode("stage", 0, SettingsKind.Mapping));
        string scratch = Directory.CreateTempSubdirectory("pluginhost-check-").FullName;
        try
        {
            var config = Config(source, Path.GetDirectoryName(folder)!, scratch, compiler.CacheDirectory, hookInterface, direction, [stage]);
            using var catalog = PluginCatalog.Load(config.PluginsDirectory, [name]);
            if (!catalog.Plugins.TryGetValue(name, out var loaded))
                throw new PluginCheckException($"check plugin {name}: {catalog.Failed.GetValueOrDefault(name) ?? "not loaded"}");
            var planned = Plan(config, catalog, $"check plugin {name}");
            var build = PluginCalls.Build(name, loaded.AssemblyPath);
            try
            {
                var check = OfflineCheck.Run([planned], compiler).Single();
                return new PluginCheckResult(name, loaded.InformationalVersion, build.Sha256, planned.Warnings.Select(w => w.ToString()).ToList(), check);
            }
            catch (HostException e) when (e is not PluginCheckException)
            {
                throw new PluginCheckException($"check plugin {name}: {e.Message}", e);
            }
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>The configuration of an offline check: one pipeline named <see cref="Pipeline"/> on <paramref name="hookInterface"/>,
    /// pinning nothing, its runtime files in <paramref name="scratch"/>.</summary>
    internal static HostConfig Config(string source, string pluginsDirectory, string scratch, string cacheDirectory, string hookInterface,
        Direction direction, IReadOnlyList<StageConfig> stages) =>
        new(source, pluginsDirectory, NoPins, scratch, cacheDirectory,
            [new PipelineConfig(Pipeline, hookInterface, direction, null, stages, new SettingsNode("pipeline", 0, SettingsKind.Mapping))]);

    /// <summary>The check's one pipeline, validated: settings problems throw, as one <see cref="ConfigException"/> led by <paramref name="what"/>.</summary>
    internal static PlannedPipeline Plan(HostConfig config, PluginCatalog catalog, string what)
    {
        try
        {
            return PipelinePlanner.Plan(config, catalog).Single();
        }
        catch (ConfigException e)
        {
            throw new ConfigException(e.Errors, $"{what}: settings");
        }
    }

    /// <summary>A stage's settings from YAML text (a mapping, as under <c>settings:</c>), located in <paramref name="file"/>;
    /// problems are refused as <paramref name="action"/>.</summary>
    internal static SettingsNode ParseSettings(string text, string file, string action = "check plugin settings")
    {
        SettingsNode root;
        try
        {
            root = BoundedYaml.Read(text, YamlLimits.Default);
        }
        catch (ConfigException e)
        {
            throw new ConfigException(e.Errors.Select(x => x with { File = file }).ToList(), action);
        }
        return root.Kind is SettingsKind.Mapping or SettingsKind.Missing ? root
            : throw new ConfigException([new ConfigError(file, root.Line, "(root)", "expected a mapping: the stage's settings, as under settings: in a configuration")], action);
    }

    // Nothing is pinned; a configuration names a BPF root all the same.
    private const string NoPins = "/nonexistent/pluginhost-check";

    // The settings file is the stage's settings: a YAML mapping, located by its own lines.
    private static SettingsNode ReadSettings(string file)
    {
        if (!File.Exists(file))
            throw new ConfigException([new ConfigError(file, 0, "(file)", "no such file")], "check plugin settings");
        if (new FileInfo(file).Length > YamlLimits.Default.MaxFileBytes)
            throw new ConfigException([new ConfigError(file, 0, "(file)", $"larger than {YamlLimits.Default.MaxFileBytes:N0} bytes")], "check plugin settings");
        return ParseSettings(File.ReadAllText(file), file);
    }
}

/// <summary>What <c>plugin check</c> found: the build checked, warnings (withdrawn routes), what ran.</summary>
public sealed record PluginCheckResult(string Plugin, string Version, string Sha256, IReadOnlyList<string> Warnings, PipelineCheck Check);

/// <summary>The plugin did not pass its offline check; the message says at which step ("check plugin NAME: ...").</summary>
public sealed class PluginCheckException(string message, Exception? inner = null) : HostException(message, inner);
