namespace PluginHost.Bench.Setup;

/// <summary>Puts a plugin version in place as an operator would: copy it next to the plugins directory, then swap folders by rename.</summary>
public static class PluginFolder
{
    /// <param name="source">A built plugin folder (NAME/).</param>
    /// <param name="pluginsDirectory">The host's plugins directory; NAME/ in it is replaced.</param>
    /// <param name="scratch">A directory on the same file system for the staging copy.</param>
    public static void Replace(string source, string pluginsDirectory, string scratch)
    {
        string name = Path.GetFileName(source);
        string staging = Path.Combine(scratch, $"staging-{name}");
        string target = Path.Combine(pluginsDirectory, name);
        string old = Path.Combine(scratch, $"old-{name}");
        if (Directory.Exists(staging))
            Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(staging, Path.GetFileName(file)));
        if (Directory.Exists(target))
            Directory.Move(target, old);
        Directory.Move(staging, target);
        if (Directory.Exists(old))
            Directory.Delete(old, recursive: true);
    }
}
