using System.Text.RegularExpressions;
using PluginHost.Contract;
using PluginHost.Runtime;
using PluginHost.TestSupport;
using Xunit;

namespace PluginHost.Tests.Docs;

/// <summary>Issue 14's doc slips: what the contract and the docs name exists, and the rules they state hold.</summary>
[Trait("Category", "Unit")]
public sealed partial class DocSlipsTests
{
    private static string Read(params string[] path) => File.ReadAllText(Path.Combine([Repo.Root, .. path]));

    [GeneratedRegex(@"\bph_[a-z0-9_]+(?=\()")]
    private static partial Regex Helper();

    [Fact]
    public void Every_template_helper_the_contract_and_PLUGINS_md_name_is_defined_in_bpf_templates()
    {
        string templates = string.Concat(Directory.GetFiles(Path.Combine(Repo.Root, "bpf-templates")).Select(File.ReadAllText));
        var named = Helper().Matches(Read("host", "PluginHost.Contract", "IRoutingPlugin.cs") + Read("docs", "PLUGINS.md") + Read("docs", "writing-a-strategy.md"))
            .Select(m => m.Value).Distinct().ToList();

        Assert.Contains("ph_redirect_ipv4", named);
        Assert.DoesNotContain("ph_redirect", named); // the helper the contract named, which never existed
        Assert.All(named, helper => Assert.Matches($@"(#define {helper}\(|\b{helper}\([^;]*\)\s*\{{|int {helper}\()", templates));
    }

    [Fact]
    public void CONFIG_md_names_the_runtime_changes_file_the_host_writes()
    {
        string config = Read("docs", "CONFIG.md");
        Assert.DoesNotContain("CONFIG.runtime.json", config);
        Assert.Contains(Path.GetFileName(RuntimeOverlay.PathFor("/etc/pluginhost/router.yaml")), config);
        Assert.Contains("router.yaml.runtime.json", config);
    }

    [Fact]
    public void Runtime_command_rules_as_PLUGINS_md_states_them()
    {
        string plugins = Read("docs", "PLUGINS.md");
        Assert.Contains("**Arguments arrive as text.**", plugins);
        Assert.Contains("**Keys compare as text.**", plugins);
        Assert.Contains("**The settings list may be absent.**", plugins);

        // A stage configured without the list gets it from the first add; every field is text; keys compare as text.
        var pipeline = new Config.PipelineConfig("p", "eth0", Direction.Ingress, null,
            [new Config.StageConfig("SourcePolicy", new SettingsNode("pipelines[0].stages[0].settings", 0, SettingsKind.Missing),
                new SettingsNode("pipelines[0].stages[0]", 3, SettingsKind.Mapping))],
            new SettingsNode("pipelines[0]", 1, SettingsKind.Mapping));
        var config = new Config.HostConfig("/etc/ph/router.yaml", "/p", "/b", "/r", "/c", [pipeline]);
        var overlay = RuntimeOverlay.Empty
            .With("p", "SourcePolicy-0", "routes", "from", "198.18.1.0/24", new() { ["from"] = "198.18.1.0/24", ["interface"] = "up1", ["metric"] = "5" })
            .With("p", "SourcePolicy-0", "routes", "from", "198.18.1.00/24", new() { ["from"] = "198.18.1.00/24", ["interface"] = "up2" });

        var routes = overlay.ApplyTo(config).Pipelines[0].Stages[0].Settings["routes"];

        Assert.Equal(SettingsKind.Sequence, routes.Kind);
        Assert.Equal(2, routes.Items.Count); // two spellings of one prefix are two items
        Assert.Equal((SettingsKind.Scalar, "5", 0), (routes.Items[0]["metric"].Kind, routes.Items[0]["metric"].Scalar, routes.Items[0]["metric"].Line));
        var emptied = overlay.With("p", "SourcePolicy-0", "routes", "from", "198.18.1.0/24", null).With("p", "SourcePolicy-0", "routes", "from", "198.18.1.00/24", null);
        Assert.Empty(emptied.ApplyTo(config).Pipelines[0].Stages[0].Settings["routes"].Items);
    }

    [Fact]
    public void Plugin_folder_naming_is_stated_in_PLUGINS_md()
    {
        string plugins = Read("docs", "PLUGINS.md");
        Assert.Contains("`<Name>` is the name the configuration uses in `plugin:`", plugins);
        Assert.Contains("pluginhost plugin check DIR --settings FILE", plugins);
    }

    [GeneratedRegex(@"```(csharp|c)\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CodeBlock();

    [Fact]
    public void Every_code_block_of_the_strategy_guide_is_in_the_template_it_describes()
    {
        // The guide's C# and C come from what dotnet new pluginhost-strategy writes, which StrategyTemplateTests builds and runs.
        string content = Path.Combine(Repo.Root, "templates", "PluginHost.Templates", "content", "pluginhost-strategy");
        var source = Directory.GetFiles(content, "*", SearchOption.AllDirectories).Where(f => f.EndsWith(".cs") || f.EndsWith(".sbn"))
            .SelectMany(File.ReadAllLines).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        var blocks = CodeBlock().Matches(Read("docs", "writing-a-strategy.md")).Select(m => m.Groups[2].Value).ToList();

        Assert.True(blocks.Count >= 10, $"{blocks.Count} code blocks");
        Assert.All(blocks, block =>
        {
            var lines = block.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
            bool found = Enumerable.Range(0, source.Count - lines.Count + 1).Any(start => source.Skip(start).Take(lines.Count).SequenceEqual(lines));
            Assert.True(found, $"not in the template's output:\n{block}");
        });
    }
}
