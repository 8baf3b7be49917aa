using System.Net;
using PluginHost.Contract;
using PluginHost.Plugins.FiveTuplePolicy.Classifier;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.FiveTuplePolicy;

/// <summary>
/// A rules file (<c>rulesFile:</c>): ClassBench's format, one rule per line, with an optional action after it:
/// <code>PRIORITY PROTO SRC/LEN DST/LEN SPORT_LO-SPORT_HI DPORT_LO-DPORT_HI [drop | pass | next | redirect IFACE [VIA]]</code>
/// PRIORITY is the rule's 0-based position among the file's rules; PROTO a number or <c>any</c>; prefixes IPv4 or
/// IPv6 (a rule is one family); <c>#</c> starts a comment line. A line without an action takes <c>defaultAction:</c>.
/// Every bad line is reported with its number and value (the first <see cref="MaxErrors"/>), and then nothing applies.
/// </summary>
internal static class RulesFile
{
    public const long MaxBytes = 256L << 20;
    public const int MaxErrors = 50;

    public static IReadOnlyList<PolicyRule> Read(SettingsNode node, IStageContext context, RuleAction defaultAction, int maxRules)
    {
        var rules = new List<PolicyRule>();
        string path;
        try
        {
            path = context.ResolvePath(node.Scalar ?? "");
        }
        catch (UnauthorizedAccessException e)
        {
            context.Error(node, e.Message);
            return rules;
        }
        string shown = Path.GetFileName(path);
        var outputs = new Interfaces(context, node);
        int errors = 0, lineNumber = 0;
        void Bad(string message)
        {
            if (++errors <= MaxErrors)
                context.Error(node, $"rules file '{path}': line {lineNumber}: {message}");
        }
        try
        {
            using var stream = RegularFile.Open(path, "rules file", MaxBytes, "split it over several stages");
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                lineNumber++;
                var text = line.AsSpan().Trim();
                if (text.IsEmpty || text[0] == '#')
                    continue;
                if (rules.Count + errors >= maxRules)
                {
                    context.Error(node, $"rules file '{path}': more than {maxRules:N0} rules (the most one stage holds)");
                    return [];
                }
                int position = rules.Count + errors;
                if (!ClassBenchFormat.TryParseMatch(text, position, out var match, out string? error, out int rest))
                {
                    Bad(ConfigCut(error!));
                    continue;
                }
                if (ParseAction(text[rest..], match.Family, defaultAction, outputs, out var action, out int ifindex, out var via) is { } problem)
                {
                    Bad(problem);
                    continue;
                }
                rules.Add(new PolicyRule("", $"{shown}:{lineNumber}", match, action, ifindex, via));
            }
        }
        catch (IOException e)
        {
            context.Error(node, e.Message);
            return [];
        }
        if (errors > MaxErrors)
            context.Error(node, $"rules file '{path}': {errors - MaxErrors:N0} more bad lines");
        if (errors > 0)
            return [];
        Interfaces.Report(context, node, outputs.Resolved);
        return rules;
    }

    // The action fields after the match: none (the default), drop, pass, next, or redirect IFACE [VIA].
    private static string? ParseAction(ReadOnlySpan<char> text, IpFamily family, RuleAction defaultAction, Interfaces outputs,
        out RuleAction action, out int ifindex, out UInt128 via)
    {
        action = defaultAction;
        ifindex = 0;
        via = 0;
        var words = text.ToString().Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
            return null;
        if (RuleParser.ParseAction(words[0]) is not { } parsed)
            return $"invalid action '{ConfigCut(words[0])}': expected drop, pass, next or redirect IFACE [VIA]";
        action = parsed;
        if (action != RuleAction.Redirect)
            return words.Length == 1 ? null : $"unexpected '{ConfigCut(words[1])}' after '{words[0]}'";
        if (words.Length is < 2 or > 3)
            return "expected redirect IFACE [VIA]";
        IPAddress? hop = null;
        if (words.Length == 3)
        {
            uint v4 = 0;
            string? problem = family == IpFamily.IPv4 ? NextHops.Ipv4Problem(words[2], null, out v4) : NextHops.Ipv6Problem(words[2], out via);
            if (problem is not null)
                return ConfigCut(problem);
            if (family == IpFamily.IPv4)
                via = v4;
            hop = IPAddress.Parse(words[2]);
        }
        return outputs.Problem(words[1], hop, out ifindex);
    }

    private static string ConfigCut(string text) => text.Length <= 200 ? text : text[..200] + "…";
}
