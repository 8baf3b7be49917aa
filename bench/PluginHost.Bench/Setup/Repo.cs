namespace PluginHost.Bench.Setup;

/// <summary>Paths in the repository the harness runs from: built plugins and the hand-written C programs.</summary>
public sealed class Repo
{
    private Repo(string root) => Root = root;

    public string Root { get; }

    /// <summary>The product's drop-in plugins, as the solution build leaves them.</summary>
    public string PluginsDirectory => Path.Combine(Root, "artifacts", "plugins");

    /// <summary>The MarkPolicy test plugin, version 1 (a second plugin to measure alone).</summary>
    public string MarkPolicyDirectory => Path.Combine(Root, "artifacts", "test-plugins", "v1");

    /// <summary>MarkPolicy build N (the reload benchmark swaps versions 1 and 2).</summary>
    public string MarkPolicyPlugin(int version) => TestSupport.Repo.MarkPolicy(version);

    public string SourcePolicyPlugin => Path.Combine(PluginsDirectory, "SourcePolicy");

    /// <summary>bench/handwritten: the C programs the chain is compared with.</summary>
    public string HandwrittenDirectory => Path.Combine(Root, "bench", "handwritten");

    /// <summary>Find the repository above the harness's own directory and check the build left what the harness needs.</summary>
    public static Repo Locate()
    {
        string root;
        try
        {
            root = TestSupport.Repo.Root;
        }
        catch (TypeInitializationException e) when (e.InnerException is InvalidOperationException missing)
        {
            throw new BenchException(missing.Message);
        }

        var repo = new Repo(root);
        foreach (var plugin in new[] { repo.SourcePolicyPlugin, repo.MarkPolicyPlugin(1), repo.MarkPolicyPlugin(2) })
            if (!Directory.Exists(plugin))
                throw new BenchException($"find plugin {Path.GetRelativePath(root, plugin)}: not built " +
                    "(build the solution first: dotnet build PluginHost.sln -c Release, or use bench/run)");
        return repo;
    }
}
