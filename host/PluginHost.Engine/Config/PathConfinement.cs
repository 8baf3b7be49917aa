namespace PluginHost.Config;

/// <summary>
/// The directories a path from settings or a runtime command may name: the configuration's directory and the
/// configuration's <c>allowedPaths:</c>. The host runs as root; without this, <c>route load /etc/shadow</c> from a member
/// of <c>api.group</c> read the file. Symbolic links are resolved first (a link inside pointing outside is outside).
/// </summary>
public sealed class PathConfinement
{
    public PathConfinement(string configDirectory, IReadOnlyList<string> allowedPaths)
    {
        ConfigDirectory = configDirectory;
        Directories = new[] { configDirectory }.Concat(allowedPaths).Distinct(StringComparer.Ordinal).ToList();
    }

    public string ConfigDirectory { get; }

    /// <summary>The allowed directories as configured (absolute).</summary>
    public IReadOnlyList<string> Directories { get; }

    /// <summary>
    /// The real path (every symbolic link resolved) of <paramref name="path"/>, relative paths taken from the configuration's
    /// directory; <see cref="UnauthorizedAccessException"/> when it is outside every allowed directory.
    /// </summary>
    public string Resolve(string path)
    {
        if (path.Contains('\0'))
            throw new IOException($"path '{ConfigText.Cut(path)}' holds a NUL character");
        string given = Path.IsPathRooted(path) ? path : Path.Join(ConfigDirectory, path);
        string real = RealPath(given);
        foreach (var directory in Directories)
        {
            string allowed = RealPath(directory);
            if (real == allowed || real.StartsWith(allowed.TrimEnd('/') + "/", StringComparison.Ordinal))
                return real;
        }
        string shown = ConfigText.Cut(path);
        string via = real == Path.GetFullPath(given) ? "" : $" (it resolves to {ConfigText.Cut(real)})";
        throw new UnauthorizedAccessException(
            $"{shown}{via} is outside the allowed directories ({string.Join(", ", Directories)}); allow it with allowedPaths in the configuration");
    }

    /// <summary>
    /// <paramref name="path"/> (absolute) with every symbolic link resolved and "." and ".." taken after resolving, as the
    /// kernel does; parts that do not exist are kept as they are.
    /// </summary>
    public static string RealPath(string path)
    {
        var pending = new Stack<string>(path.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        string current = "/";
        int links = 0;
        while (pending.TryPop(out var part))
        {
            if (part == ".")
                continue;
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? "/";
                continue;
            }
            string next = Path.Join(current, part);
            string? target = new FileInfo(next).LinkTarget;
            if (target is null)
            {
                current = next;
                continue;
            }
            if (++links > 40)
                throw new IOException($"resolve {ConfigText.Cut(path)}: too many levels of symbolic links");
            if (target.StartsWith('/'))
                current = "/";
            foreach (var t in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
                pending.Push(t);
        }
        return current;
    }
}
