using System.Text;
using System.Text.RegularExpressions;
using Scriban;
using Scriban.Runtime;
using Scriban.Syntax;

namespace PluginHost.Compose;

/// <summary>
/// Renders a Scriban template into C that keeps pointing at the template: every output line
/// carries a <c>#line N "label"</c> mapping, so clang errors and the verifier's source lines
/// (from BTF line info) name the template file and line.
/// </summary>
/// <remarks>
/// Scriban has no source maps. Before parsing, a marker with the template line number is put at
/// the start of every line that begins outside a code block; after rendering, the markers are
/// read back and turned into #line directives.
/// </remarks>
internal static partial class TemplateRenderer
{
    private const char MarkOpen = '\u0001';
    private const char MarkClose = '\u0002';

    /// <summary>Render <paramref name="text"/> with <paramref name="model"/>; <paramref name="label"/> names it in errors.</summary>
    /// <summary>The most one template may render: a chain is compiled whole, and clang is bounded too.</summary>
    public const int MaxRenderedChars = 16 << 20;

    public static string Render(string text, string label, IReadOnlyDictionary<string, object?> model)
    {
        var template = Template.Parse(AddLineMarks(text), label);
        if (template.HasErrors)
        {
            var first = template.Messages.First();
            throw new TemplateException(label, first.Span.Start.Line + 1, first.Message);
        }

        // LimitToString 0: Scriban otherwise cuts a value's text at 1 MiB without a word; the whole output is bounded below instead.
        var context = new TemplateContext
        {
            StrictVariables = true, EnableRelaxedMemberAccess = false, MemberRenamer = m => m.Name, LoopLimit = 100_000, LimitToString = 0,
        };
        context.PushGlobal(ToScript(model));
        string rendered;
        try
        {
            rendered = template.Render(context);
        }
        catch (ScriptRuntimeException e)
        {
            throw new TemplateException(label, e.Span.Start.Line + 1, e.OriginalMessage);
        }
        if (rendered.Length > MaxRenderedChars)
            throw new TemplateException(label, 0, $"rendered {rendered.Length:N0} characters, more than the limit of {MaxRenderedChars:N0}");
        return ToLineDirectives(rendered, label);
    }

    internal static string AddLineMarks(string text)
    {
        var sb = new StringBuilder(text.Length * 2);
        int depth = 0;
        int line = 1;
        int blockStartLine = 0;
        bool atLineStart = true;
        for (int i = 0; i < text.Length; i++)
        {
            if (atLineStart && depth == 0)
                sb.Append(MarkOpen).Append(line).Append(MarkClose);
            atLineStart = false;
            char c = text[i];
            if (c == '{' && i + 1 < text.Length && text[i + 1] == '{')
            {
                if (depth == 0)
                    blockStartLine = line;
                depth++;
                sb.Append("{{");
                i++;
                continue;
            }
            if (c == '}' && i + 1 < text.Length && text[i + 1] == '}' && depth > 0)
            {
                depth--;
                sb.Append("}}");
                i++;
                // Text after a code block that spanned lines is on the block's last line.
                if (depth == 0 && line != blockStartLine)
                    sb.Append(MarkOpen).Append(line).Append(MarkClose);
                continue;
            }
            sb.Append(c);
            if (c == '\n')
            {
                line++;
                atLineStart = true;
            }
        }
        return sb.ToString();
    }

    internal static string ToLineDirectives(string rendered, string label)
    {
        var sb = new StringBuilder(rendered.Length);
        int expected = -1;
        foreach (var raw in rendered.Split('\n'))
        {
            var marks = Mark().Matches(raw);
            string line = marks.Count > 0 ? Mark().Replace(raw, "") : raw;
            if (marks.Count == 0)
            {
                // Text from a value (a generated struct, an inserted fragment with its own #line): the
                // numbering is unknown until the next mark.
                sb.Append(line).Append('\n');
                expected = -1;
                continue;
            }
            if (line.Trim().Length == 0)
                continue; // a line that held only template code, or nothing
            int number = int.Parse(marks[^1].Groups[1].Value);
            if (number != expected)
                sb.Append("#line ").Append(number).Append(" \"").Append(label).Append("\"\n");
            sb.Append(line).Append('\n');
            expected = number + 1;
        }
        return sb.ToString();
    }

    private static ScriptObject ToScript(IReadOnlyDictionary<string, object?> model)
    {
        var obj = new ScriptObject();
        foreach (var (key, value) in model)
            obj[key] = ToScriptValue(value);
        return obj;
    }

    private static object? ToScriptValue(object? value) => value switch
    {
        IReadOnlyDictionary<string, object?> d => ToScript(d),
        string or null => value,
        System.Collections.IEnumerable list => new ScriptArray(list.Cast<object?>().Select(ToScriptValue)),
        _ => value,
    };

    [GeneratedRegex("\u0001(\\d+)\u0002")]
    private static partial Regex Mark();
}

/// <summary>A template failed to parse or render.</summary>
internal sealed class TemplateException(string file, int line, string detail)
    : HostException($"render template {file}:{line}: {detail}")
{
    public string File { get; } = file;
    public int Line { get; } = line;
}
