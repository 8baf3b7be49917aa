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

    // The last files read, by path, size, modification time and default action: a rule add on a stage with a 100,000-line
    // file parses nothing again, as long as every interface the file redirects to still resolves as it did.
    private static readonly Lock Gate = new();
    private static readonly List<(FileKey Key, IReadOnlyList<PolicyRule> Rules, Dictionary<(string Name, IPAddress? Via), (OutputInterface Result, int Lines)> Outputs)> Recent = [];

    // Not the stage's room for rules: it changes with the settings' rule count (an add, a del), and the file does not.
    private readonly record struct FileKey(string Path, long Length, DateTime Modified, RuleAction DefaultAction);

    public static IReadOnlyList<PolicyRule> Read(SettingsNode node, IStageContext context, RuleAction defaultAction, int maxRules)
    {
        string path;
        try
        {
            path = context.ResolvePath(node.Scalar ?? "");
        }
        catch (UnauthorizedAccessException e)
        {
            context.Error(node, e.Message);
            return [];
        }
        var info = new FileInfo(path);
        var key = info.Exists ? new FileKey(path, info.Length, info.LastWriteTimeUtc, defaultAction) : default;
        lock (Gate)
        {
            var hit = Recent.FirstOrDefault(r => r.Key == key && info.Exists);
            if (hit.Rules is not null && hit.Rules.Count <= maxRules && Interfaces.Unchanged(hit.Outputs, context, node))
            {
                Interfaces.Report(context, node, hit.Outputs);
                return hit.Rules;
            }
        }
        var outputs = new Interfaces(context, node);
        var rules = Parse(node, path, context, defaultAction, maxRules, outputs);
        if (rules is null)
            return [];
        Interfaces.Report(context, node, outputs.Resolved);
        if (info.Exists)
            lock (Gate)
            {
                Recent.RemoveAll(r => r.Key.Path == path);
                Recent.Add((key, rules, outputs.Resolved));
                if (Recent.Count > 2)
                    Recent.RemoveAt(0);
            }
        return rules;
    }

    // Every line, or null when any is bad (each reported).
    private static List<PolicyRule>? Parse(SettingsNode node, string path, IStageContext context, RuleAction defaultAction, int maxRules, Interfaces outputs)
    {
        var rules = new List<PolicyRule>();
        string shown = Path.GetFileName(path);
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
                    return null;
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
            return null;
        }
        if (errors > MaxErrors)
            context.Error(node, $"rules file '{path}': {errors - MaxErrors:N0} more bad lines");
        return errors > 0 ? null : rules;
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
