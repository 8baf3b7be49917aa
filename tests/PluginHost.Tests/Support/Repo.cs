namespace PluginHost.Tests.Support;

/// <summary>Paths in the repository the tests run from.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    /// <summary>Where the solution build puts drop-in plugins (one folder each). The tests never reference them.</summary>
    public static string PluginsDirectory => Path.Combine(Root, "artifacts", "plugins");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "PluginHost.sln")))
                return dir.FullName;
        throw new InvalidOperationException("find repository root: no PluginHost.sln above " + AppContext.BaseDirectory);
    }
}
