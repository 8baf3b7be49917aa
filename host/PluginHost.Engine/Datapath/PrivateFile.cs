namespace PluginHost.Datapath;

/// <summary>
/// Files only root reads: pipeline state, the reload history (it holds error messages), the runtime overlay. Written
/// whole to a temporary file created with mode 0600 (never a chmod after: no moment when another user could open it),
/// then renamed over the old one.
/// </summary>
internal static class PrivateFile
{
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public static void WriteAllText(string path, string text)
    {
        string tmp = path + ".tmp";
        // A temporary file left by a crash keeps its mode when truncated: start from none.
        File.Delete(tmp);
        using (var stream = new FileStream(tmp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = Mode }))
        using (var writer = new StreamWriter(stream))
            writer.Write(text);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>As <see cref="WriteAllText"/>, unless the file already holds <paramref name="text"/>: most applies change no
    /// status file, and reading one costs less than writing and renaming it.</summary>
    public static void WriteIfChanged(string path, string text)
    {
        if (File.Exists(path) && File.ReadAllText(path) == text)
            return;
        WriteAllText(path, text);
    }
}
