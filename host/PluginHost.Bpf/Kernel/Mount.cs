namespace PluginHost.Kernel;

/// <summary>A mount from <c>/proc/self/mountinfo</c>: where it is, its filesystem type, and whether it is read-only.</summary>
public sealed record Mount(string MountPoint, string Type, bool ReadOnly)
{
    /// <summary>The mount that holds <paramref name="path"/> (an existing, absolute path): the longest mount point containing it.</summary>
    public static Mount Of(string path)
    {
        var best = new Mount("/", "", false);
        int bestLength = -1;
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // "id parent major:minor root mountpoint options [optional...] - type source superoptions"
            var parts = line.Split(' ');
            int dash = Array.IndexOf(parts, "-");
            if (dash < 6 || parts.Length < dash + 2)
                continue;
            string mountPoint = Unescape(parts[4]);
            if ((path == mountPoint || path.StartsWith(mountPoint.TrimEnd('/') + "/", StringComparison.Ordinal) || mountPoint == "/")
                && mountPoint.Length >= bestLength)
            {
                bestLength = mountPoint.Length;
                best = new Mount(mountPoint, parts[dash + 1], parts[5].Split(',').Contains("ro"));
            }
        }
        return best;
    }

    // mountinfo escapes space, tab, newline and backslash as \ooo.
    private static string Unescape(string field) =>
        field.Contains('\\') ? System.Text.RegularExpressions.Regex.Replace(field, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString()) : field;
}
