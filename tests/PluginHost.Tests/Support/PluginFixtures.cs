using PluginHost.TestSupport;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Plugins;
using PluginHost.Tests.Support;

namespace PluginHost.Tests.Support;

/// <summary>A real plugin, loaded once from the build output like the host loads it.</summary>
public abstract class PluginFixture : IDisposable
{
    protected PluginFixture(string name)
    {
        Catalog = PluginCatalog.Load(Repo.PluginsDirectory, [name]);
        Plugin = Catalog.Plugins.TryGetValue(name, out var loaded) ? loaded.Instance
            : throw new InvalidOperationException(
                $"load {name} from {Repo.PluginsDirectory}: not found ({string.Join("; ", Catalog.Errors)}) (build the solution first)");
    }

    public PluginCatalog Catalog { get; }

    public IRoutingPlugin Plugin { get; }

    public void Dispose() => Catalog.Dispose();

    /// <summary>The settings node of the only stage (plugin <paramref name="plugin"/>) of a whole config whose settings are <paramref name="settingsYaml"/>.</summary>
    public static SettingsNode Settings(string plugin, string settingsYaml)
    {
        string indented = string.Join('\n', settingsYaml.Split('\n').Select(l => "          " + l));
        string yaml = $"""
            pipelines:
              - name: t
                interface: eth0
                direction: ingress
                stages:
                  - plugin: {plugin}
                    settings:
            {indented}
            """;
        return ConfigLoader.Parse(yaml, "/etc/ph/config.yaml").Pipelines[0].Stages[0].Settings;
    }
}

public sealed class SourcePolicyFixture() : PluginFixture("SourcePolicy");

public sealed class Ipv6Fixture() : PluginFixture("IPv6");

public sealed class FiveTuplePolicyFixture() : PluginFixture("FiveTuplePolicy");

public sealed class LoadBalancerFixture() : PluginFixture("LoadBalancer");

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

    public List<(SettingsNode Node, string Message)> Warnings { get; } = [];

    public void Warn(SettingsNode node, string message) => Warnings.Add((node, message));

    /// <summary>The host's probe states as a test decides them; a probe not listed is Unknown.</summary>
    public Dictionary<string, ProbeState> Probes { get; } = [];

    public ProbeState ProbeState(string name) => Probes.GetValueOrDefault(name);
}
