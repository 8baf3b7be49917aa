namespace PluginHost.TestSupport;

/// <summary>Paths in the repository the tests and the bench run from: what the solution build leaves in artifacts/.</summary>
public static class Repo
{
    /// <summary>The directory holding PluginHost.sln, above the running assembly (or the working directory).</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The product's drop-in plugins (one folder each), as the solution build leaves them.</summary>
    public static string PluginsDirectory => Path.Combine(Root, "artifacts", "plugins");

    /// <summary>The MarkPolicy test plugin's folder, build <paramref name="version"/> (1..4).</summary>
    public static string MarkPolicy(int version) => Path.Combine(Root, "artifacts", "test-plugins", $"v{version}", "MarkPolicy");

    private static string FindRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "PluginHost.sln")))
                    return dir.FullName;
        throw new InvalidOperationException($"find repository root: no PluginHost.sln above {AppContext.BaseDirectory}");
    }
}
