using System.Net;
using System.Net.Sockets;
using System.Text;
using PluginHost.Kernel;
using PluginHost.Net;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PluginHost.Config;

/// <summary>
/// What the machine must offer the configuration, checked before anything is applied: <c>validate</c> and <c>run</c>
/// ask the same questions, so a configuration <c>validate</c> passes is not refused by <c>run</c> half-way through
/// starting (after its datapath is applied). Nothing is created: bpfRoot is on a mounted bpffs, <c>api.group</c>
/// exists in /etc/group, <c>metrics.listen</c> is an address of this machine, the runtime and cache directories can
/// be created and the control socket's path fits a Unix socket address. <c>run</c> also binds the metrics port
/// (<see cref="RequireListen"/>) once it holds the runtime directory's lock.
/// Problems are <see cref="ConfigError"/>s located in the configuration file like every other.
/// </summary>
public static class HostChecks
{
    /// <summary>sun_path holds 108 bytes with the terminating NUL.</summary>
    public const int MaxSocketPathBytes = 107;

    /// <summary>Every problem of <paramref name="config"/> with this machine; empty when there is none.</summary>
    public static IReadOnlyList<ConfigError> Find(HostConfig config)
    {
        var errors = new List<ConfigError>();
        var lines = new Lazy<YamlLines>(() => YamlLines.Read(config.SourcePath));
        void Error(string top, string? child, string message)
        {
            var (line, found) = lines.Value.Find(top, child);
            string field = child is null ? top : $"{top}.{child}";
            errors.Add(new ConfigError(config.SourcePath, line, field, found ? message : message + " (the default)"));
        }

        if (!BpfFs.IsOnBpfFs(config.BpfRoot))
            Error("bpfRoot", null, $"'{config.BpfRoot}' is not on a mounted bpffs (mount -t bpf bpf /sys/fs/bpf, or choose a directory under /sys/fs/bpf)");

        if (config.ApiGroup is { } group && Ownership.GroupId(group) is null)
            Error("api", "group", $"no group '{group}' in /etc/group (create it with groupadd --system {group}, or remove api.group)");

        if (config.MetricsListen is { } listen && IPEndPoint.TryParse(listen, out var endpoint))
        {
            // Port 0: the address is checked, not whether a running host already serves this port.
            if (TryListen(new IPEndPoint(endpoint.Address, 0)) is { } problem)
                Error("metrics", "listen", $"cannot listen on '{listen}': {problem}");
        }

        if (Creatable(config.RuntimeDirectory) is { } runtimeProblem)
            Error("runtimeDirectory", null, $"cannot create '{config.RuntimeDirectory}': {runtimeProblem}");
        else if (Encoding.UTF8.GetByteCount(config.ControlSocket) is var length and > MaxSocketPathBytes)
            Error("runtimeDirectory", null, $"'{config.RuntimeDirectory}' is too long: the control socket '{config.ControlSocket}' would be {length} bytes, " +
                                            $"a Unix socket path is at most {MaxSocketPathBytes}");
        if (Creatable(config.CacheDirectory) is { } cacheProblem)
            Error("cacheDirectory", null, $"cannot create '{config.CacheDirectory}': {cacheProblem}");
        return errors;
    }

    /// <summary>Refuse <paramref name="config"/> (a <see cref="ConfigException"/> listing every problem) when <see cref="Find"/> finds any.</summary>
    public static void Require(HostConfig config)
    {
        var errors = Find(config);
        if (errors.Count > 0)
            throw new ConfigException(errors);
    }

    /// <summary>
    /// <c>run</c> only, before its first apply: the metrics port can be bound now (not held by another process). The
    /// port is released again at once, for the exporter that binds it after the apply.
    /// </summary>
    public static void RequireListen(HostConfig config)
    {
        if (config.MetricsListen is not { } listen || !IPEndPoint.TryParse(listen, out var endpoint))
            return;
        if (TryListen(endpoint) is { } problem)
        {
            var (line, _) = YamlLines.Read(config.SourcePath).Find("metrics", "listen");
            throw new ConfigException([new ConfigError(config.SourcePath, line, "metrics.listen", $"cannot listen on '{listen}': {problem}")]);
        }
    }

    private static string? TryListen(IPEndPoint endpoint)
    {
        try
        {
            var listener = new TcpListener(endpoint);
            listener.Start();
            listener.Stop();
            return null;
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => "the port is in use by another process",
                SocketError.AddressNotAvailable => "the address is not one of this machine's",
                _ => e.Message,
            };
        }
    }

    // Whether mkdir -p would succeed, without creating anything: every existing part is a directory, the nearest
    // existing one is not on a read-only mount. (The host runs as root: permissions do not stop it.)
    private static string? Creatable(string directory)
    {
        string? probe = directory;
        while (probe is not null && !Path.Exists(probe))
            probe = Path.GetDirectoryName(probe);
        if (probe is null)
            return "no part of it exists";
        if (!Directory.Exists(probe))
            return $"'{probe}' is not a directory";
        if (probe != directory)
        {
            var mount = Mount.Of(probe);
            if (mount.ReadOnly)
                return $"'{probe}' is on a read-only filesystem ({mount.MountPoint})";
        }
        return null;
    }

    /// <summary>Lines of top-level fields and their children in the configuration file, read as YAML events: no alias is expanded.</summary>
    private sealed class YamlLines
    {
        private readonly Dictionary<string, int> _lines = [];

        public static YamlLines Read(string file)
        {
            var lines = new YamlLines();
            try
            {
                lines.Scan(File.ReadAllText(file));
            }
            catch (Exception e) when (e is YamlException or IOException or UnauthorizedAccessException)
            {
                // The file changed since it was loaded: the problems are still reported, without lines.
            }
            return lines;
        }

        /// <summary>The line of <paramref name="top"/>.<paramref name="child"/>'s value, else of <paramref name="top"/>'s; found: the field is in the file.</summary>
        public (int Line, bool Found) Find(string top, string? child)
        {
            if (_lines.TryGetValue(child is null ? top : $"{top}.{child}", out int line))
                return (line, true);
            return (_lines.GetValueOrDefault(top), false);
        }

        // Only the first two levels of mappings matter; deeper events are skipped, never held.
        private void Scan(string yaml)
        {
            var parser = new Parser(new StringReader(yaml));
            var frames = new Stack<(bool Mapping, bool AtKey, string Path)>();
            string? key = null;
            while (parser.MoveNext())
            {
                var e = parser.Current!;
                if (e is MappingEnd or SequenceEnd)
                {
                    frames.Pop();
                    continue;
                }
                if (e is not (Scalar or MappingStart or SequenceStart or AnchorAlias))
                    continue;
                string path = "";
                if (frames.TryPop(out var parent))
                {
                    if (parent.Mapping && parent.AtKey)
                    {
                        key = (e as Scalar)?.Value ?? "";
                        frames.Push(parent with { AtKey = false });
                        continue;
                    }
                    path = parent.Mapping ? (parent.Path.Length == 0 ? key! : $"{parent.Path}.{key}") : parent.Path + "[]";
                    frames.Push(parent with { AtKey = true });
                    if (parent.Mapping && frames.Count <= 2)
                        _lines.TryAdd(path, (int)e.Start.Line);
                }
                if (e is MappingStart or SequenceStart)
                    frames.Push((e is MappingStart, true, path));
            }
        }
    }
}
