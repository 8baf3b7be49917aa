using PluginHost.Contract;
using PluginHost.Plugins;
using PluginHost.Tests.Support;

namespace PluginHost.Tests.Plugins;

/// <summary>The real SourcePolicy plugin, loaded once from the build output like the host loads it.</summary>
public sealed class SourcePolicyFixture : IDisposable
{
    public SourcePolicyFixture()
    {
        Catalog = PluginCatalog.Load(Repo.PluginsDirectory);
        if (!Catalog.Plugins.TryGetValue("SourcePolicy", out var loaded))
            throw new InvalidOperationException(
                $"load SourcePolicy from {Repo.PluginsDirectory}: not found ({string.Join("; ", Catalog.Errors)}) (build the solution first)");
        Plugin = loaded.Instance;
    }

    public PluginCatalog Catalog { get; }

    public IRoutingPlugin Plugin { get; }

    public void Dispose() => Catalog.Dispose();
}

/// <summary>An <see cref="IStageContext"/> that knows only the interfaces it is given and records errors.</summary>
public sealed class FakeStageContext(IReadOnlyDictionary<string, int> interfaces, Direction direction = Direction.Ingress) : IStageContext
{
    public static FakeStageContext Default() => new(new Dictionary<string, int> { ["up1"] = 7, ["up2"] = 8 });

    public List<(SettingsNode Node, string Message)> Errors { get; } = [];

    public List<string> Resolved { get; } = [];

    public string PipelineName => "test";

    public Direction Direction => direction;

    public bool TryResolveInterface(string name, out int ifindex, out string error)
    {
        Resolved.Add(name);
        if (interfaces.TryGetValue(name, out ifindex))
        {
            error = "";
            return true;
        }
        error = $"no interface named '{name}'";
        return false;
    }

    public string ResolvePath(string path) => Path.GetFullPath(path, "/etc/ph");

    public void Error(SettingsNode node, string message) => Errors.Add((node, message));
}
