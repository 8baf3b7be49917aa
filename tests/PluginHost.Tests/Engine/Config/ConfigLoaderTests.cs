using PluginHost.Config;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Engine.Config;

[Trait("Category", "Unit")]
public sealed class ConfigLoaderTests
{
    private const string File = "/etc/ph/config.yaml";

    private static ConfigException Fails(string yaml) => Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, File));

    private static ConfigError Single(string yaml)
    {
        var error = Assert.Single(Fails(yaml).Errors);
        Assert.Equal(File, error.File);
        return error;
    }

    [Fact]
    public void GoodConfigParsesWithPathsRelativeToTheFileAndDefaults()
    {
        const string yaml = """
            pluginsDirectory: plugins
            cacheDirectory: ../cache
            pipelines:
              - name: edge-in
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: up1
                  - plugin: Other
              - name: edge-out
                interface: eth0
                direction: Egress
                namespace: lab-1
                stages:
                  - plugin: SourcePolicy
            """;

        var config = ConfigLoader.Parse(yaml, File);

        Assert.Equal(File, config.SourcePath);
        Assert.Equal("/etc/ph/plugins", config.PluginsDirectory);
        Assert.Equal("/etc/cache", config.CacheDirectory);
        Assert.Equal(HostConfig.DefaultBpfRoot, config.BpfRoot);
        Assert.Equal(HostConfig.DefaultRuntimeDirectory, config.RuntimeDirectory);
        Assert.Collection(config.Pipelines,
            p =>
            {
                Assert.Equal("edge-in", p.Name);
                Assert.Equal("eth0", p.Interface);
                Assert.Equal(Direction.Ingress, p.Direction);
                Assert.Null(p.Namespace);
                Assert.Equal(["SourcePolicy", "Other"], p.Stages.Select(s => s.Plugin));
                var settings = p.Stages[0].Settings;
                Assert.Equal(SettingsKind.Mapping, settings.Kind);
                Assert.Equal("pipelines[0].stages[0].settings", settings.Path);
                Assert.Equal(10, settings.Line);
                var from = settings["routes"].Items[0]["from"];
                Assert.Equal("198.18.1.0/24", from.Scalar);
                Assert.Equal(11, from.Line);
                Assert.Equal("pipelines[0].stages[0].settings.routes[0].from", from.Path);
                Assert.True(p.Stages[1].Settings.IsMissing);
            },
            p =>
            {
                Assert.Equal("edge-out", p.Name);
                Assert.Equal(Direction.Egress, p.Direction);
                Assert.Equal("lab-1", p.Namespace);
            });
    }

    [Fact]
    public void AbsolutePathsAreKeptAndDefaultPluginsDirectoryIsNextToTheHost()
    {
        const string yaml = """
            bpfRoot: /sys/fs/bpf/test-root
            runtimeDirectory: /tmp/ph-run
            pipelines:
              - name: a
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
            """;

        var config = ConfigLoader.Parse(yaml, File);

        Assert.Equal("/sys/fs/bpf/test-root", config.BpfRoot);
        Assert.Equal("/tmp/ph-run", config.RuntimeDirectory);
        Assert.Equal(HostConfig.DefaultCacheDirectory, config.CacheDirectory);
        Assert.True(Path.IsPathRooted(config.PluginsDirectory));
        Assert.Equal(Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "plugins")), Path.GetFullPath(config.PluginsDirectory));
    }

    [Fact]
    public void UnknownTopLevelFieldIsNamedWithItsLine()
    {
        const string yaml = """
            pipelines:
              - name: a
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
            pluginDirectory: ./plugins
            """;

        var error = Single(yaml);

        Assert.Equal(7, error.Line);
        Assert.Equal("pluginDirectory", error.FieldPath);
        Assert.Contains("'pluginDirectory'", error.Message);
        Assert.Contains("pluginsDirectory", error.Message); // the expected spellings are listed
    }

    [Fact]
    public void MissingPipelinesIsAnError()
    {
        var error = Single("bpfRoot: /sys/fs/bpf/x\n");

        Assert.Equal("pipelines", error.FieldPath);
        Assert.Equal(1, error.Line);
        Assert.Contains("pipeline", error.Message);
    }

    [Fact]
    public void EmptyPipelinesListIsAnErrorOnItsLine()
    {
        var error = Single("bpfRoot: /sys/fs/bpf/x\npipelines: []\n");

        Assert.Equal("pipelines", error.FieldPath);
        Assert.Equal(2, error.Line);
    }

    [Theory]
    [InlineData("Edge")]
    [InlineData("1edge")]
    [InlineData("edge_in")]
    [InlineData("a-very-long-pipeline-name-over-32-chars")]
    public void BadPipelineNameIsRefusedWithTheValue(string name)
    {
        string yaml = $"""
            pipelines:
              - name: {name}
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
            """;

        var error = Single(yaml);

        Assert.Equal(2, error.Line);
        Assert.Equal("pipelines[0].name", error.FieldPath);
        Assert.Contains($"'{name}'", error.Message);
    }

    [Fact]
    public void BadDirectionIsRefusedWithTheValue()
    {
        const string yaml = """
            pipelines:
              - name: a
                interface: eth0
                direction: sideways
                stages:
                  - plugin: SourcePolicy
            """;

        var error = Single(yaml);

        Assert.Equal(4, error.Line);
        Assert.Equal("pipelines[0].direction", error.FieldPath);
        Assert.Contains("'sideways'", error.Message);
        Assert.Contains("ingress or egress", error.Message);
    }

    // Enum.TryParse accepts numbers and comma-separated flag lists: none of these is a direction.
    [Theory]
    [InlineData("1")]
    [InlineData("7")]
    [InlineData("ingress, egress")]
    public void NumericOrCombinedDirectionIsRefused(string direction)
    {
        string yaml = $"""
            pipelines:
              - name: a
                interface: eth0
                direction: "{direction}"
                stages:
                  - plugin: SourcePolicy
            """;

        var error = Single(yaml);

        Assert.Equal("pipelines[0].direction", error.FieldPath);
    }

    [Fact]
    public void DuplicatePipelineNameIsReportedOnTheSecond()
    {
        const string yaml = """
            pipelines:
              - name: edge
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
              - name: edge
                interface: eth1
                direction: ingress
                stages:
                  - plugin: SourcePolicy
            """;

        var error = Single(yaml);

        Assert.Equal(7, error.Line);
        Assert.Equal("pipelines[1].name", error.FieldPath);
        Assert.Contains("'edge'", error.Message);
    }

    [Fact]
    public void TwoPipelinesOnOneHookAreRefused()
    {
        const string yaml = """
            pipelines:
              - name: first
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
              - name: second
                interface: eth0
                direction: INGRESS
                stages:
                  - plugin: SourcePolicy
            """;

        var error = Single(yaml);

        Assert.Equal(8, error.Line);
        Assert.Equal("pipelines[1].interface", error.FieldPath);
        Assert.Contains("'eth0'", error.Message);
        Assert.Contains("ingress", error.Message);
        Assert.Contains("'first'", error.Message);
    }

    [Fact]
    public void SameInterfaceOnOtherDirectionOrNamespaceIsFine()
    {
        const string yaml = """
            pipelines:
              - name: a
                interface: eth0
                direction: ingress
                stages: [{ plugin: SourcePolicy }]
              - name: b
                interface: eth0
                direction: egress
                stages: [{ plugin: SourcePolicy }]
              - name: c
                interface: eth0
                direction: ingress
                namespace: other
                stages: [{ plugin: SourcePolicy }]
            """;

        Assert.Equal(3, ConfigLoader.Parse(yaml, File).Pipelines.Count);
    }

    [Fact]
    public void MissingStagePluginIsReportedAtTheStage()
    {
        const string yaml = """
            pipelines:
              - name: a
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
                  - settings:
                      routes: []
            """;

        var error = Single(yaml);

        Assert.Equal(7, error.Line);
        Assert.Equal("pipelines[0].stages[1].plugin", error.FieldPath);
        Assert.Contains("missing", error.Message);
    }

    [Fact]
    public void MissingStagesAndUnknownStageFieldAreReported()
    {
        const string yaml = """
            pipelines:
              - name: a
                interface: eth0
                direction: ingress
              - name: b
                interface: eth1
                direction: ingress
                stages:
                  - plugin: SourcePolicy
                    setings: {}
            """;

        var errors = Fails(yaml).Errors;

        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.FieldPath == "pipelines[0].stages");
        Assert.Contains(errors, e => e.FieldPath == "pipelines[1].stages[0].setings" && e.Line == 10 && e.Message.Contains("'setings'"));
    }

    [Fact]
    public void SyntaxErrorNamesTheLine()
    {
        const string yaml = """
            pipelines:
              - name: a
                interface: eth0
               direction: ingress
                stages:
                  - plugin: SourcePolicy
            """;

        var error = Single(yaml);

        Assert.Equal(4, error.Line);
        Assert.Equal("(syntax)", error.FieldPath);
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    [Fact]
    public void UnclosedFlowSequenceIsASyntaxError()
    {
        var error = Single("pipelines: [\n  { name: a\n");

        Assert.Equal("(syntax)", error.FieldPath);
        Assert.True(error.Line >= 2, $"line {error.Line}");
    }

    [Fact]
    public void DuplicateKeyIsAConfigErrorNotACrash()
    {
        const string yaml = """
            pipelines:
              - name: a
                name: b
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
            """;

        var error = Single(yaml);

        Assert.Equal(3, error.Line);
    }

    [Fact]
    public void NonScalarMappingKeyIsAConfigErrorNotACrash()
    {
        // The rest of the document is valid: the key alone must be the error.
        var error = Single("""
            ? [a, b]
            : c
            pipelines:
              - name: a
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
            """);

        Assert.Equal(1, error.Line);
    }

    [Fact]
    public void RootThatIsNotAMappingIsRefused()
    {
        Assert.Equal("(root)", Single("- a\n- b\n").FieldPath);
        Assert.Equal("(root)", Single("").FieldPath);
    }

    [Fact]
    public void EveryProblemIsReportedOnceAndTogether()
    {
        const string yaml = """
            colour: blue
            pipelines:
              - name: Bad_Name
                interface: eth0
                direction: ingress
                stages:
                  - plugin: SourcePolicy
              - name: b
                interface: eth1
                direction: sideways
                stages:
                  - settings: {}
              - name: c
                interface: eth2
                direction: egress
                stages:
                  - plugin: SourcePolicy
            """;

        var exception = Fails(yaml);

        Assert.Collection(exception.Errors.OrderBy(e => e.Line),
            e => Assert.Equal((1, "colour"), (e.Line, e.FieldPath)),
            e => Assert.Equal((3, "pipelines[0].name"), (e.Line, e.FieldPath)),
            e => Assert.Equal((10, "pipelines[1].direction"), (e.Line, e.FieldPath)),
            e => Assert.Equal((12, "pipelines[1].stages[0].plugin"), (e.Line, e.FieldPath)));
        Assert.All(exception.Errors, e => Assert.Equal(File, e.File));
        Assert.Equal(exception.Errors.Count, exception.Errors.Select(e => e.Message).Distinct().Count());
        Assert.StartsWith("validate configuration: 4 problems:", exception.Message);
        foreach (var e in exception.Errors)
            Assert.Contains($"{File}:{e.Line}: {e.FieldPath}: {e.Message}", exception.Message);
    }

    [Fact]
    public void LoadOfMissingFileIsAConfigError()
    {
        string path = Path.Combine(Path.GetTempPath(), "ph-no-such-" + Guid.NewGuid().ToString("N"), "config.yaml");

        var error = Assert.Single(Assert.Throws<ConfigException>(() => ConfigLoader.Load(path)).Errors);

        Assert.Equal(path, error.File);
    }
}
