using System.Security.Cryptography;
using System.Text.RegularExpressions;
using PluginHost.Net;

namespace PluginHost.Plugins;

/// <summary>
/// Whether the host may run the code in a plugin folder, decided before any of it runs (the host is root). The rule:
/// <list type="bullet">
/// <item>Every path the host reads plugin code from is walked from <c>/</c> with each symlink resolved (its real target is
/// what is judged). Every entry crossed on the way (directories, symlinks, the file itself) is owned by root (uid 0).</item>
/// <item>The plugins directory, each plugin folder, everything in it, and the allow-list are not writable by group or
/// others.</item>
/// <item>A directory above them may be group- or world-writable only if it has the sticky bit (like <c>/tmp</c>,
/// 1777): there only an entry's owner (root, by the first rule) may rename or remove it, so nobody else can put another
/// directory in its place. A writable directory without the sticky bit is refused.</item>
/// <item>When <c>plugins.trust.sha256</c> exists in the plugins directory (the format <c>sha256sum</c> writes:
/// <c>HEX  NAME/NAME.dll</c>), every DLL of a plugin to load must be listed in it with its SHA-256.</item>
/// </list>
/// Once these hold only root can change the files, so what was checked is what loads.
/// </summary>
internal static partial class PluginTrust
{
    public const string AllowListName = "plugins.trust.sha256";

    public const string DirectoryRule = "the plugins directory and the directories above it must be owned by root and not group- or world-writable " +
        "(a root-owned directory with the sticky bit, such as /tmp, is accepted above it when the entry in it is owned by root)";

    public const string PluginRule = "plugin folders and DLLs must be owned by root and not group- or world-writable";

    public const string AllowListRule = $"the allow-list {AllowListName} must be owned by root and not group- or world-writable";

    private const int MaxSymlinks = 40;

    /// <summary>
    /// Walk <paramref name="path"/> from the root: null if it is trusted, else what is wrong, ending with <paramref name="rule"/>
    /// ("/p/X/X.dll is writable by others (mode 0777, owner 1000): RULE").
    /// </summary>
    public static string? Check(string path, string rule)
    {
        try
        {
            return Walk(Path.GetFullPath(path)) is { } problem ? $"{problem}: {rule}" : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot check {path} ({e.Message}): {rule}";
        }
    }

    // Null when trusted. Symlinks are followed component by component, as the kernel would, so the real path is judged.
    private static string? Walk(string path)
    {
        var pending = new Stack<string>(Components(path).Reverse());
        string current = "/";
        var here = FileOwner.Of("/");
        if (here.Uid != 0)
            return Describe("/", here, $"owned by uid {here.Uid}, not root");
        int links = 0;
        while (pending.TryPop(out var name))
        {
            if (name is "." or "")
                continue;
            if (name == "..")
            {
                current = Path.GetDirectoryName(current) ?? "/";
                here = FileOwner.Of(current);
                continue;
            }
            string next = current == "/" ? "/" + name : current + "/" + name;
            var entry = FileOwner.Of(next);
            if (entry.Uid != 0)
                return Describe(next, entry, $"owned by uid {entry.Uid}, not root");
            // The directory we pass through: another user could put something else in the entry's place if it were writable,
            // unless it is sticky (then only the entry's owner, root, may rename or remove it).
            if (Writable(here) is { } writable && !here.Sticky)
                return Describe(current, here, $"writable by {writable}");
            if (entry.Type == FileOwner.Kind.Symlink)
            {
                if (++links > MaxSymlinks)
                    return $"{path} has more than {MaxSymlinks} symbolic links in its path";
                string target = new FileInfo(next).LinkTarget ?? "";
                foreach (var part in Components(target).Reverse())
                    pending.Push(part);
                if (target.StartsWith('/'))
                {
                    current = "/";
                    here = FileOwner.Of("/");
                }
                continue;
            }
            if (pending.Count > 0 && entry.Type != FileOwner.Kind.Directory)
                return $"{next} is not a directory";
            current = next;
            here = entry;
        }
        // The end of the path, the plugins directory or a plugin's own file: nobody but root may write to it, sticky or not.
        return Writable(here) is { } w ? Describe(current, here, $"writable by {w}") : null;
    }

    private static IEnumerable<string> Components(string path) => path.Split('/', StringSplitOptions.RemoveEmptyEntries);

    private static string? Writable(FileOwner owner) => (owner.Mode & 0x10, owner.Mode & 0x2) switch
    {
        (0, 0) => null,
        (_, 0) => "group",
        (0, _) => "others",
        _ => "group and others",
    };

    private static string Describe(string path, FileOwner owner, string what) =>
        $"{path} is {what} (mode {Convert.ToString(owner.Mode, 8).PadLeft(4, '0')}, owner {owner.Uid})";

    /// <summary>The DLLs of a plugin's folder (its own and its dependencies), relative to the plugins directory with '/'.</summary>
    public static IReadOnlyList<string> Dlls(string directory, string folder) =>
        System.IO.Directory.EnumerateFiles(folder, "*.dll", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(directory, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// The file's SHA-256. Every command asks whether the plugins changed and which build runs: a file is hashed again only
    /// when its stamp (inode, size, times, including the change time no one can set back) moved.
    /// </summary>
    public static string Sha256(string file)
    {
        var stamp = Net.FileStamp.Of(file);
        lock (HashesLock)
            if (stamp is { } s && Hashes.TryGetValue(file, out var known) && known.Stamp == s)
                return known.Hash;
        string hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
        // Kept only for a file unchanged while it was read and changed more than 2 s ago: timestamps move in coarse ticks,
        // so a write in the same tick as the last one could leave the stamp as it was (git's "racy clean" case).
        if (stamp is { } now && Net.FileStamp.Of(file) == now && now.ChangedSeconds < DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 2)
            lock (HashesLock)
                Hashes[file] = (now, hash);
        return hash;
    }

    private static readonly Dictionary<string, (Net.FileStamp Stamp, string Hash)> Hashes = [];
    private static readonly Lock HashesLock = new();

    /// <summary>The optional allow-list of a plugins directory: what each listed DLL's SHA-256 must be.</summary>
    public sealed partial class AllowList
    {
        private readonly Dictionary<string, (string Hash, int Line)> _pins = new(StringComparer.Ordinal);

        private AllowList(string path) => Path = path;

        public string Path { get; }

        /// <summary>The allow-list of <paramref name="directory"/>: null when there is none; <paramref name="problem"/> when it cannot be used.</summary>
        public static AllowList? Read(string directory, out string? problem)
        {
            problem = null;
            string path = System.IO.Path.Combine(directory, AllowListName);
            if (!File.Exists(path) && !IsLink(path))
                return null;
            var list = new AllowList(path);
            if (Check(path, AllowListRule) is { } untrusted)
            {
                problem = untrusted;
                return list;
            }
            int number = 0;
            foreach (var line in File.ReadLines(path))
            {
                number++;
                if (line.Trim() is "" || line.TrimStart().StartsWith('#'))
                    continue;
                var match = Line().Match(line);
                if (!match.Success)
                {
                    problem = $"{path}:{number}: not a sha256sum line (expected: 64 hex digits, two spaces, NAME/NAME.dll)";
                    return list;
                }
                string name = match.Groups[2].Value.TrimEnd('\r');
                if (name.StartsWith("./", StringComparison.Ordinal))
                    name = name[2..];
                list._pins[name] = (match.Groups[1].Value.ToLowerInvariant(), number);
            }
            return list;
        }

        private static bool IsLink(string path)
        {
            try
            {
                return FileOwner.Of(path).Type == FileOwner.Kind.Symlink;
            }
            catch (IOException)
            {
                return false;
            }
        }

        /// <summary>Null when the DLL (relative to the plugins directory) is listed with this hash; else what is wrong.</summary>
        public string? Problem(string relative, string file, string hash) =>
            !_pins.TryGetValue(relative, out var pin)
                ? $"{file} (sha256 {hash}) is not listed in {Path}: when the allow-list exists, every DLL of a plugin must be listed in it with its sha256"
                : pin.Hash != hash
                    ? $"{file} has sha256 {hash}, but {Path} line {pin.Line} pins {pin.Hash}: only the DLLs the allow-list pins are loaded"
                    : null;

        [GeneratedRegex("^([0-9A-Fa-f]{64}) [ *](.+)$")]
        private static partial Regex Line();
    }
}
