using System.Text.RegularExpressions;
using PluginHost.Compose;
using Xunit;

namespace PluginHost.Tests.Engine.Compose;

[Trait("Category", "Unit")]
public sealed partial class TemplateRendererTests
{
    private const string Label = "Plugin/stage.c.sbn";

    /// <summary>Every non-directive output line with the file and line a C compiler would attribute it to.</summary>
    internal static List<(string Text, string? File, int Line)> Attribute(string output)
    {
        var lines = new List<(string, string?, int)>();
        string? file = null;
        int next = 0;
        foreach (var line in output.Split('\n'))
        {
            var m = LineDirective().Match(line);
            if (m.Success)
            {
                next = int.Parse(m.Groups[1].Value);
                file = m.Groups[2].Value;
                continue;
            }
            lines.Add((line, file, next));
            next++;
        }
        return lines;
    }

    /// <summary>Where the compiler would say the (single) output line <paramref name="text"/> comes from.</summary>
    private static (string? File, int Line) Where(string output, string text)
    {
        var (_, file, line) = Assert.Single(Attribute(output), l => l.Text == text);
        return (file, line);
    }

    private static string Render(string template, Dictionary<string, object?>? model = null) =>
        TemplateRenderer.Render(template, Label, model ?? new Dictionary<string, object?>());

    [Fact]
    public void EveryLineMapsBackToItsTemplateLine()
    {
        const string template = """
            // head {{ name }}
            {{ for i in items }}
            item {{ i }};
            {{ end }}
            after loop;
            {{ multi }}
            after multi;
            {{ if flag }}
            flagged;
            {{ end }}
            last;

            """;
        var model = new Dictionary<string, object?>
        {
            ["name"] = "x",
            ["items"] = new[] { 1, 2, 3 },
            ["multi"] = "a;\nb;\nc;",
            ["flag"] = true,
        };

        string output = Render(template, model);

        Assert.DoesNotContain('\u0001', output);
        Assert.DoesNotContain('\u0002', output);
        Assert.Equal(["// head x", "item 1;", "item 2;", "item 3;", "after loop;", "a;", "b;", "c;", "after multi;", "flagged;", "last;"],
            Attribute(output).Select(l => l.Text).Where(t => t.Length > 0));
        Assert.Equal((Label, 1), Where(output, "// head x"));
        Assert.Equal((Label, 3), Where(output, "item 1;"));
        Assert.Equal((Label, 3), Where(output, "item 2;"));
        Assert.Equal((Label, 3), Where(output, "item 3;"));
        Assert.Equal((Label, 5), Where(output, "after loop;"));
        Assert.Equal((Label, 6), Where(output, "a;"));
        Assert.Equal((Label, 7), Where(output, "after multi;"));
        Assert.Equal((Label, 9), Where(output, "flagged;"));
        Assert.Equal((Label, 11), Where(output, "last;"));
    }

    [Fact]
    public void ConsecutiveLinesShareOneDirective()
    {
        string output = Render("int a;\nint b;\nint c;\n");

        Assert.Single(Regex.Matches(output, "#line "));
        Assert.StartsWith($"#line 1 \"{Label}\"\nint a;\nint b;\nint c;\n", output);
    }

    [Fact]
    public void AnInsertedFragmentKeepsItsOwnLinesAndTheHostResumesAfterIt()
    {
        string fragment = TemplateRenderer.Render("// frag\n{{ if true }}\nint f;\n{{ end }}\n", "P/frag.sbn", new Dictionary<string, object?>());

        string output = TemplateRenderer.Render("host1;\n{{ fragment }}\nhost3;\n", "host.sbn", new Dictionary<string, object?> { ["fragment"] = fragment });

        Assert.Equal(("host.sbn", 1), Where(output, "host1;"));
        Assert.Equal(("P/frag.sbn", 1), Where(output, "// frag"));
        Assert.Equal(("P/frag.sbn", 3), Where(output, "int f;"));
        Assert.Equal(("host.sbn", 3), Where(output, "host3;"));
    }

    [Fact]
    public void WhitespaceControlKeepsTheMapping()
    {
        string output = Render("a;\n{{~ if true ~}}\nb;\n{{~ end ~}}\nc;\n");

        Assert.Equal((Label, 3), Where(output, "b;"));
        Assert.Equal((Label, 5), Where(output, "c;"));
    }

    [Fact]
    public void TextAfterAMultiLineCodeBlockMapsToItsOwnLine()
    {
        string output = Render("{{\n  x = 5\n}}int a = {{ x }};\nend;\n");

        Assert.Equal((Label, 3), Where(output, "int a = 5;"));
        Assert.Equal((Label, 4), Where(output, "end;"));
    }

    [Fact]
    public void NestedModelsListsAndNumbersRender()
    {
        var model = new Dictionary<string, object?>
        {
            ["stage"] = new Dictionary<string, object?> { ["function"] = "s1_run", ["next_slot"] = 2 },
            ["counters"] = new List<Dictionary<string, object?>> { new() { ["name"] = "PH_A", ["index"] = 0 }, new() { ["name"] = "PH_B", ["index"] = 1 } },
            ["generation"] = 42u,
        };

        string output = Render("int {{ stage.function }}(void) { return {{ stage.next_slot }} + {{ generation }}; }\n{{ for c in counters }}\n#define {{ c.name }} {{ c.index }}\n{{ end }}\n", model);

        Assert.Contains("int s1_run(void) { return 2 + 42; }\n", output);
        Assert.Contains("#define PH_A 0\n", output);
        Assert.Contains("#define PH_B 1\n", output);
    }

    [Fact]
    public void ParseErrorNamesTheFileAndLine()
    {
        var e = Assert.Throws<TemplateException>(() => Render("int a;\nint b;\n{{ if }}\nint c;\n{{ end }}\n"));

        Assert.Equal(Label, e.File);
        Assert.Equal(3, e.Line);
        Assert.StartsWith($"render template {Label}:3: ", e.Message);
    }

    [Fact]
    public void UnclosedBlockIsAParseError()
    {
        var e = Assert.Throws<TemplateException>(() => Render("int a;\n{{ for i in items }}\nint b;\n", new() { ["items"] = new[] { 1 } }));

        Assert.Equal(Label, e.File);
        Assert.InRange(e.Line, 2, 4);
    }

    [Fact]
    public void UndefinedVariableNamesTheFileAndLine()
    {
        var e = Assert.Throws<TemplateException>(() => Render("int a;\n\nint {{ nope }};\n"));

        Assert.Equal(Label, e.File);
        Assert.Equal(3, e.Line);
        Assert.Contains("nope", e.Message);
    }

    [Fact]
    public void UndefinedVariableInsideALoopNamesTheLoopLine()
    {
        var e = Assert.Throws<TemplateException>(() =>
            Render("a;\n{{ for i in items }}\nx {{ i }};\ny {{ missing }};\n{{ end }}\n", new() { ["items"] = new[] { 1, 2 } }));

        Assert.Equal(4, e.Line);
    }

    [Fact]
    public void MemberOfAMissingObjectIsAnError()
    {
        var model = new Dictionary<string, object?>
        {
            ["maps"] = new Dictionary<string, object?> { ["routes"] = new Dictionary<string, object?> { ["name"] = "s0_routes" } },
        };
        Assert.Contains("&s0_routes", Render("x = &{{ maps.routes.name }};\n", model));

        var e = Assert.Throws<TemplateException>(() => Render("a;\nx = &{{ maps.rutes.name }};\n", model));

        Assert.Equal(2, e.Line);
    }

    // A typo in a member name (stage.functoin) must not silently render as an empty string.
    [Fact]
    public void UndefinedMemberOfAnExistingObjectIsAnError()
    {
        var model = new Dictionary<string, object?> { ["stage"] = new Dictionary<string, object?> { ["function"] = "s0_run" } };

        var e = Assert.Throws<TemplateException>(() => Render("a;\nint {{ stage.functoin }}(void);\n", model));

        Assert.Equal(2, e.Line);
        Assert.Contains("functoin", e.Message);
    }

    [GeneratedRegex("^#line (\\d+) \"([^\"]*)\"$")]
    private static partial Regex LineDirective();

    [Fact]
    public void AFragmentLongerThanAMebibyteIsNotCutSilently()
    {
        string fragment = new('x', 3 << 20);

        string output = TemplateRenderer.Render("{{ fragment }}\n", "host.sbn", new Dictionary<string, object?> { ["fragment"] = fragment });

        Assert.Contains(fragment, output);
    }

    [Fact]
    public void ARenderPastTheLimitIsAnError()
    {
        string fragment = new('x', TemplateRenderer.MaxRenderedChars + 1);

        var e = Assert.Throws<TemplateException>(() => TemplateRenderer.Render("{{ fragment }}", "host.sbn", new Dictionary<string, object?> { ["fragment"] = fragment }));

        Assert.Contains("more than the limit of 16,777,216", e.Message);
    }
}
