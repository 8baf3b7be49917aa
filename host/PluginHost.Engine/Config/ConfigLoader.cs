using System.Text.RegularExpressions;
using PluginHost.Contract;

namespace PluginHost.Config;

/// <summary>
/// Reads the YAML configuration into <see cref="HostConfig"/>, checking its shape. Plugin settings
/// stay as <see cref="SettingsNode"/> trees for the plugins to validate. Every problem is collected;
/// any problem means an exception and nothing returned.
/// </summary>
public static partial class ConfigLoader
{
    private static readonly string[] TopLevelKeys = ["pluginsDirectory", "bpfRoot", "runtimeDirectory", "cacheDirectory", "allowedPaths", "pluginCallTimeout", "api", "metrics", "pipelines"];
    private static readonly string[] PipelineKeys = ["name", "interface", "direction", "namespace", "stages"];
    private static readonly string[] StageKeys = ["plugin", "settings"];

    public static HostConfig Load(string path, YamlLimits? limits = null)
    {
        limits ??= YamlLimits.Default;
        string full = Path.GetFullPath(path);
        var info = new FileInfo(full);
        if (!info.Exists)
            throw new ConfigException([new ConfigError(full, 0, "(file)", Directory.Exists(full) ? "is a directory, not a file" : "no such file")]);
        if (info.Length > limits.MaxFileBytes)
            throw new ConfigException([new ConfigError(full, 0, "(file)", $"{info.Length:N0} bytes: at most {limits.MaxFileBytes:N0} bytes")]);
        using var stream = new FileStream(full, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.ReadWrite });
        // Read no further than the limit: the file may grow after it was measured.
        var bytes = new byte[Math.Min(limits.MaxFileBytes, info.Length + 65_536) + 1];
        int read = 0, n;
        while (read < bytes.Length && (n = stream.Read(bytes, read, bytes.Length - read)) > 0)
            read += n;
        if (read > limits.MaxFileBytes)
            throw new ConfigException([new ConfigError(full, 0, "(file)", $"more than {limits.MaxFileBytes:N0} bytes")]);
        if (read == bytes.Length)
            throw new ConfigException([new ConfigError(full, 0, "(file)", "grew while it was read (read it again)")]);
        using var text = new StreamReader(new MemoryStream(bytes, 0, read), detectEncodingFromByteOrderMarks: true);
        return Parse(text.ReadToEnd(), full, limits);
    }

    public static HostConfig Parse(string yaml, string file, YamlLimits? limits = null)
    {
        limits ??= YamlLimits.Default;
        var errors = new List<ConfigError>();
        if (yaml.Length > limits.MaxFileBytes)
            throw new ConfigException([new ConfigError(file, 0, "(file)", $"{yaml.Length:N0} characters: at most {limits.MaxFileBytes:N0}")]);
        SettingsNode root;
        try
        {
            root = BoundedYaml.Read(yaml, limits);
        }
        catch (ConfigException e)
        {
            throw new ConfigException(e.Errors.Select(x => x with { File = file }).ToList());
        }

        void Error(SettingsNode node, string message) => errors.Add(new ConfigError(file, node.Line, node.Path, message));

        if (root.Kind != SettingsKind.Mapping)
            throw new ConfigException([new ConfigError(file, root.Line, "(root)", "expected a mapping with 'pipelines'")]);
        foreach (var key in root.Keys.Where(k => !TopLevelKeys.Contains(k)))
            Error(root[key], $"unknown field '{key}' (expected one of: {string.Join(", ", TopLevelKeys)})");

        string baseDir = Path.GetDirectoryName(file)!;
        string PathSetting(string key, string fallback)
        {
            var node = root[key];
            if (node.IsMissing)
                return fallback;
            if (node.Kind != SettingsKind.Scalar || string.IsNullOrWhiteSpace(node.Scalar) || node.Scalar.Contains('\0'))
            {
                Error(node, "expected a path");
                return fallback;
            }
            return Path.GetFullPath(node.Scalar!, baseDir);
        }

        string plugins = PathSetting("pluginsDirectory", Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "plugins")));
        string bpfRoot = PathSetting("bpfRoot", HostConfig.DefaultBpfRoot);
        string runtime = PathSetting("runtimeDirectory", HostConfig.DefaultRuntimeDirectory);
        string cache = PathSetting("cacheDirectory", HostConfig.DefaultCacheDirectory);
        var allowedPaths = new List<string>();
        var allowedNode = root["allowedPaths"];
        if (!allowedNode.IsMissing && allowedNode.Kind != SettingsKind.Sequence)
            Error(allowedNode, "expected a list of directories");
        foreach (var item in allowedNode.Items)
        {
            if (item.Kind != SettingsKind.Scalar || string.IsNullOrWhiteSpace(item.Scalar) || item.Scalar.Contains('\0'))
                Error(item, "expected a directory");
            else
                allowedPaths.Add(Path.GetFullPath(item.Scalar!, baseDir));
        }

        var pipelines = new List<PipelineConfig>();
        var pipelinesNode = root["pipelines"];
        if (pipelinesNode.Kind != SettingsKind.Sequence || pipelinesNode.Items.Count == 0)
            Error(pipelinesNode, "expected a list of at least one pipeline");
        else
            foreach (var p in pipelinesNode.Items)
                if (ParsePipeline(p, Error) is { } pipeline)
                    pipelines.Add(pipeline);

        foreach (var dup in pipelines.GroupBy(p => p.Name).Where(g => g.Count() > 1))
            Error(dup.Skip(1).First().Node["name"], $"pipeline name '{dup.Key}' is used twice");
        foreach (var dup in pipelines.GroupBy(p => (p.Namespace, p.Interface, p.Direction)).Where(g => g.Count() > 1))
            Error(dup.Skip(1).First().Node["interface"],
                $"'{dup.Key.Interface}' {dup.Key.Direction.ToString().ToLowerInvariant()} already has pipeline '{dup.First().Name}' (one pipeline per hook: add stages to it instead)");

        string? apiGroup = null;
        var api = root["api"];
        if (!api.IsMissing)
        {
            foreach (var key in api.Keys.Where(k => k != "group"))
                Error(api[key], $"unknown field '{key}' (expected: group)");
            apiGroup = api["group"].Scalar;
            if (apiGroup is not null && !GroupName().IsMatch(apiGroup))
                Error(api["group"], $"invalid group name '{apiGroup}'");
        }
        string? metricsListen = null;
        var metrics = root["metrics"];
        if (!metrics.IsMissing)
        {
            foreach (var key in metrics.Keys.Where(k => k != "listen"))
                Error(metrics[key], $"unknown field '{key}' (expected: listen)");
            metricsListen = metrics["listen"].Scalar ?? "127.0.0.1:9464";
            if (!System.Net.IPEndPoint.TryParse(metricsListen, out var endpoint) || endpoint.Port == 0)
                Error(metrics["listen"], $"invalid listen address '{metricsListen}': expected host:port such as 127.0.0.1:9464");
        }

        var pluginCallTimeout = HostConfig.DefaultPluginCallTimeout;
        var timeoutNode = root["pluginCallTimeout"];
        if (!timeoutNode.IsMissing)
        {
            if (timeoutNode.Kind == SettingsKind.Scalar && double.TryParse(timeoutNode.Scalar, System.Globalization.NumberStyles.Float,
                    System.Globalization.CultureInfo.InvariantCulture, out double seconds) && seconds is >= 0.1 and <= 600)
                pluginCallTimeout = TimeSpan.FromSeconds(seconds);
            else
                Error(timeoutNode, $"invalid timeout '{Cut(timeoutNode.Scalar)}': expected seconds between 0.1 and 600");
        }

        if (errors.Count > 0)
            throw new ConfigException(errors);
        return new HostConfig(file, plugins, bpfRoot, runtime, cache, pipelines)
        {
            ApiGroup = apiGroup, MetricsListen = metricsListen, PluginCallTimeout = pluginCallTimeout, AllowedPaths = allowedPaths,
        };
    }

    // A value echoed in an error, never whole.
    private static string Cut(string? value) => value is null ? "" : value.Length <= 200 ? value : value[..200] + "…";

    private static PipelineConfig? ParsePipeline(SettingsNode p, Action<SettingsNode, string> error)
    {
        if (p.Kind != SettingsKind.Mapping)
        {
            error(p, "expected a pipeline with name, interface, direction and stages");
            return null;
        }
        foreach (var key in p.Keys.Where(k => !PipelineKeys.Contains(k)))
            error(p[key], $"unknown field '{key}' (expected one of: {string.Join(", ", PipelineKeys)})");

        bool ok = true;
        string name = Required(p["name"], error, ref ok);
        if (ok && !PipelineName().IsMatch(name))
        {
            error(p["name"], $"invalid pipeline name '{name}': use 1-32 lower-case letters, digits and '-', starting with a letter");
            ok = false;
        }
        string iface = Required(p["interface"], error, ref ok);
        string directionText = Required(p["direction"], error, ref ok);
        var direction = Direction.Ingress;
        if (directionText.Equals("egress", StringComparison.OrdinalIgnoreCase))
            direction = Direction.Egress;
        else if (directionText.Length > 0 && !directionText.Equals("ingress", StringComparison.OrdinalIgnoreCase))
        {
            error(p["direction"], $"invalid direction '{directionText}': expected ingress or egress");
            ok = false;
        }
        string? ns = null;
        if (!p["namespace"].IsMissing)
        {
            ns = p["namespace"].Scalar;
            if (ns is null || !NamespaceName().IsMatch(ns))
            {
                error(p["namespace"], $"invalid network namespace name '{ns}'");
                ok = false;
            }
        }

        var stages = new List<StageConfig>();
        var stagesNode = p["stages"];
        if (stagesNode.Kind != SettingsKind.Sequence || stagesNode.Items.Count == 0)
        {
            error(stagesNode, "expected a list of at least one stage");
            ok = false;
        }
        else
        {
            foreach (var s in stagesNode.Items)
            {
                if (s.Kind != SettingsKind.Mapping)
                {
                    error(s, "expected a stage with 'plugin' and 'settings'");
                    ok = false;
                    continue;
                }
                foreach (var key in s.Keys.Where(k => !StageKeys.Contains(k)))
                    error(s[key], $"unknown field '{key}' (expected one of: {string.Join(", ", StageKeys)})");
                string plugin = Required(s["plugin"], error, ref ok);
                stages.Add(new StageConfig(plugin, s["settings"], s));
            }
        }
        return ok ? new PipelineConfig(name, iface, direction, ns, stages, p) : null;
    }

    private static string Required(SettingsNode node, Action<SettingsNode, string> error, ref bool ok)
    {
        if (node.Kind == SettingsKind.Scalar && !string.IsNullOrWhiteSpace(node.Scalar))
            return node.Scalar!;
        error(node, node.IsMissing ? "required field is missing" : "expected a single value");
        ok = false;
        return "";
    }

    [GeneratedRegex("^[a-z][a-z0-9-]{0,31}$")]
    private static partial Regex PipelineName();

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,64}$")]
    private static partial Regex NamespaceName();

    [GeneratedRegex("^[a-z_][a-z0-9_-]{0,31}$")]
    private static partial Regex GroupName();
}
