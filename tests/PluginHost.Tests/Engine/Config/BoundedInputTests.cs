using System.Text;
using PluginHost.Config;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Engine.Config;

/// <summary>
/// Issue 11, bounded input: the documents that killed the host (a stack overflow, an out-of-memory), each read in this
/// process: the test process living to assert the error is the point.
/// </summary>
[Trait("Category", "Unit")]
public sealed class BoundedInputTests
{
    private const string File = "/etc/ph/config.yaml";

    private static ConfigError Refused(string yaml)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, File));
        var error = Assert.Single(e.Errors);
        Assert.Equal(File, error.File);
        return error;
    }

    // 20 KB nested 10,000 deep overflowed the stack of the recursive representation model.
    [Theory]
    [InlineData("flow")]
    [InlineData("block")]
    public void ANestingBombIsRefusedAtTheFirstLevelTooDeep(string style)
    {
        string yaml = style == "flow"
            ? "pipelines: " + new string('[', 10_000) + new string(']', 10_000)
            : "pipelines:\n" + string.Concat(Enumerable.Repeat("- ", 10_000)) + "x\n";

        var error = Refused(yaml);

        Assert.Equal("nesting deeper than 64 levels", error.Message);
        Assert.StartsWith("pipelines[0][0][0]", error.FieldPath);
        Assert.Equal(style == "flow" ? 1 : 2, error.Line);
        Assert.Equal($"{File}:{error.Line}: {error.FieldPath}: nesting deeper than 64 levels", error.ToString());
    }

    // 1.3 KB of nine anchors of nine aliases each: 9^9 = 387 million "lol"s once expanded.
    [Fact]
    public void AnAliasBombIsRefusedBeforeItIsExpanded()
    {
        var yaml = new StringBuilder("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (char c = 'b'; c <= 'i'; c++)
            yaml.Append($"{c}: &{c} [{string.Join(',', Enumerable.Repeat($"*{(char)(c - 1)}", 9))}]\n");
        yaml.Append("pipelines: *i\n");
        Assert.InRange(yaml.Length, 300, 1_400);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = Refused(yaml.ToString());

        Assert.Equal("more than 250,000 nodes with aliases expanded", error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }

    [Fact]
    public void AliasesExpandedAlsoCountTowardsTheDepth()
    {
        string deep = "a: &deep " + new string('[', 40) + new string(']', 40) + "\n";
        var error = Refused(deep + "b: " + new string('[', 30) + "*deep" + new string(']', 30) + "\npipelines: []\n");

        Assert.Equal("nesting deeper than 64 levels", error.Message);
        Assert.Equal(2, error.Line);
    }

    [Fact]
    public void TooManyAliasesAreRefused()
    {
        string yaml = "x: &x 1\npipelines: [" + string.Join(',', Enumerable.Repeat("*x", 1_001)) + "]\n";

        var error = Refused(yaml);

        Assert.Equal("more than 1,000 aliases", error.Message);
        Assert.StartsWith("pipelines[1000]", error.FieldPath);
    }

    [Fact]
    public void TooManyNodesAreRefused()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("pipelines: [" + string.Join(',', Enumerable.Repeat("1", 101)) + "]",
            File, new YamlLimits(MaxNodes: 100))).Errors.Single();

        Assert.Equal("more than 100 nodes", error.Message);
    }

    [Fact]
    public void AnAliasInsideItsOwnAnchorIsRefused()
    {
        var error = Refused("a: &a [1, *a]\npipelines: []\n");

        Assert.Equal("alias '*a' is inside its own anchor", error.Message);
    }

    [Fact]
    public void ADuplicateKeyIsRefusedAtTheSecond()
    {
        var error = Refused("pipelines: []\nbpfRoot: /a\nbpfRoot: /b\n");

        Assert.Equal((3, "bpfRoot", "field 'bpfRoot' is given twice"), (error.Line, error.FieldPath, error.Message));
    }

    [Fact]
    public void AliasesAreStillExpandedWithTheirOwnPaths()
    {
        var config = ConfigLoader.Parse("""
            pipelines:
              - name: a
                interface: eth0
                direction: ingress
                stages: &stages [{ plugin: SourcePolicy, settings: { routes: [] } }]
              - name: b
                interface: eth1
                direction: ingress
                stages: *stages
            """, File);

        var settings = config.Pipelines[1].Stages[0].Settings;
        Assert.Equal(("pipelines[1].stages[0].settings", 5), (settings.Path, settings.Line));
        Assert.Equal("pipelines[0].stages[0].settings.routes", config.Pipelines[0].Stages[0].Settings["routes"].Path);
    }

    [Fact]
    public void AFileLargerThanTheLimitIsNotRead()
    {
        string dir = Directory.CreateTempSubdirectory("pluginhost-limits-").FullName;
        try
        {
            string path = Path.Combine(dir, "config.yaml");
            System.IO.File.WriteAllText(path, "pipelines: []\n# " + new string('x', 5 << 20) + "\n");

            var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(path)).Errors.Single();

            Assert.Equal((path, "(file)"), (error.File, error.FieldPath));
            Assert.Matches(@"^5,242,\d{3} bytes: at most 4,194,304 bytes$", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // A megabyte-long value echoed in an error is cut to a few hundred characters, whoever wrote the message.
    [Fact]
    public void EchoedValuesAreCut()
    {
        string name = new('n', 1_000_000);
        var error = Refused($"pipelines:\n  - name: {name}\n    interface: eth0\n    direction: ingress\n    stages: [{{ plugin: X }}]\n");

        Assert.StartsWith("invalid pipeline name 'nnnn", error.Message);
        Assert.Contains("… (1,000,000 characters)': use 1-32 lower-case letters", error.Message);
        Assert.True(error.Message.Length < 400, $"{error.Message.Length} characters");
    }

    [Theory]
    [InlineData("short 'value' stays", "short 'value' stays")]
    [InlineData("it's fine", "it's fine")]
    public void CutQuotedLeavesShortMessagesAlone(string message, string expected) => Assert.Equal(expected, ConfigText.CutQuoted(message));

    [Fact]
    public void CutQuotedCutsEveryLongValueAndTheWhole()
    {
        string message = $"a '{new string('x', 500)}' b '{new string('y', 300)}' c";
        string cut = ConfigText.CutQuoted(message);

        Assert.Equal($"a '{new string('x', 200)}… (500 characters)' b '{new string('y', 200)}… (300 characters)' c", cut);
        Assert.True(ConfigText.CutQuoted(new string('z', 10_000)).Length < ConfigText.MaxMessage + 40);
    }

    [Fact]
    public void AllowedPathsAreReadRelativeToTheFile()
    {
        var config = ConfigLoader.Parse("allowedPaths: [tables, /srv/routes]\npipelines: [{ name: a, interface: eth0, direction: ingress, stages: [{ plugin: X }] }]\n", File);

        Assert.Equal(["/etc/ph/tables", "/srv/routes"], config.AllowedPaths);
        Assert.Equal(["/etc/ph", "/etc/ph/tables", "/srv/routes"], config.Confinement.Directories);
    }

    // Found by the fuzzer: a NUL in a path setting was an ArgumentException out of Path.GetFullPath.
    [Theory]
    [InlineData("allowedPaths: [\"a\\x00b\"]", "allowedPaths[0]")]
    [InlineData("bpfRoot: \"/sys/fs/bpf/\\x00\"", "bpfRoot")]
    public void APathWithANulCharacterIsRefused(string line, string field)
    {
        var error = Refused(line + "\npipelines: [{ name: a, interface: eth0, direction: ingress, stages: [{ plugin: X }] }]\n");

        Assert.Equal(field, error.FieldPath);
    }

    [Fact]
    public void AllowedPathsMustBeAList()
    {
        var error = Refused("allowedPaths: /srv\npipelines: [{ name: a, interface: eth0, direction: ingress, stages: [{ plugin: X }] }]\n");

        Assert.Equal(("allowedPaths", "expected a list of directories"), (error.FieldPath, error.Message));
    }
}
