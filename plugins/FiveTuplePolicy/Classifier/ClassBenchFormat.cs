using System.Globalization;
using System.IO.Compression;

namespace PluginHost.Plugins.FiveTuplePolicy.Classifier;

/// <summary>
/// ClassBench rules and traces. A rules line is <c>PRIORITY PROTO SRC/LEN DST/LEN SPORT_LO-SPORT_HI DPORT_LO-DPORT_HI</c>,
/// fields separated by spaces or tabs; PRIORITY is the rule's 0-based position (the first match wins), PROTO a
/// number 0-255 or <c>any</c>, ports inclusive ranges (<c>0-65535</c> = any).
/// Extensions to ClassBench's own format: prefixes may be IPv6 (<c>2001:db8::/32</c>, <c>::/0</c>), both of a rule
/// in the same family; blank lines and lines starting with <c>#</c> are skipped (PRIORITY still counts rules only).
/// Files ending in <c>.gz</c> are read through gzip.
/// </summary>
internal static class ClassBenchFormat
{
    private const string RuleShape = "PRIORITY PROTO SRC/LEN DST/LEN SPORT_LO-SPORT_HI DPORT_LO-DPORT_HI";

    public static IReadOnlyList<RuleMatch> ReadRules(string path)
    {
        using var reader = Open(path);
        return ParseRules(reader, path);
    }

    /// <summary>Every rule, in order; or a <see cref="RulesFormatException"/> listing every bad line.</summary>
    public static IReadOnlyList<RuleMatch> ParseRules(TextReader reader, string source = "rules")
    {
        var rules = new List<RuleMatch>();
        var errors = new List<string>();
        int lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            var text = line.AsSpan().Trim();
            if (text.IsEmpty || text[0] == '#')
                continue;
            if (TryParseRule(text, rules.Count, out var rule, out string? error))
                rules.Add(rule);
            else
            {
                errors.Add($"line {lineNumber}: {error}");
                rules.Add(default); // keeps the count right, so later PRIORITY fields are checked against their position
            }
        }
        if (errors.Count > 0)
            throw new RulesFormatException(source, errors);
        return rules;
    }

    /// <summary>One trace header: the packet (with ports, as ClassBench assumes) and the rule expected to match it.</summary>
    public static IEnumerable<TraceEntry> ReadTrace(string path)
    {
        using var reader = Open(path);
        int lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            var text = line.AsSpan().Trim();
            if (text.IsEmpty || text[0] == '#')
                continue;
            if (!TryParseTraceLine(text, out var entry))
                throw new FormatException($"read trace {path}: line {lineNumber}: expected SRC DST SPORT DPORT PROTO EXPECTED_RULE, found '{line}'");
            yield return entry;
        }
    }

    private static TextReader Open(string path)
    {
        Stream stream = File.OpenRead(path);
        if (path.EndsWith(".gz", StringComparison.Ordinal))
            stream = new GZipStream(stream, CompressionMode.Decompress);
        return new StreamReader(stream);
    }

    private static bool TryParseRule(ReadOnlySpan<char> text, int position, out RuleMatch rule, out string? error)
    {
        bool ok = TryParseMatch(text, position, out rule, out error, out int rest);
        if (ok && rest < text.Length)
        {
            error = $"expected 6 fields ({RuleShape}), found more";
            return false;
        }
        return ok;
    }

    /// <summary>
    /// The match part of one rules line: its first six fields (<c>PRIORITY PROTO SRC/LEN DST/LEN SPORTS DPORTS</c>).
    /// <paramref name="rest"/> is where the text after them starts (the plugin's action fields), or the line's length.
    /// </summary>
    public static bool TryParseMatch(ReadOnlySpan<char> text, int position, out RuleMatch rule, out string? error, out int rest)
    {
        rule = default;
        rest = text.Length;
        Span<Range> fields = stackalloc Range[7];
        int count = Split(text, fields);
        if (count < 6)
        {
            error = $"expected 6 fields ({RuleShape}), found {count}";
            return false;
        }
        if (count == 7)
            rest = fields[6].Start.Value;
        var problems = new List<string>(2);
        var priority = text[fields[0]];
        if (!int.TryParse(priority, NumberStyles.None, CultureInfo.InvariantCulture, out int p) || p != position)
            problems.Add($"priority '{priority}' is not the rule's position {position} (rules are numbered from 0 in file order)");
        var proto = text[fields[1]];
        byte protoLow = 0, protoHigh = 255;
        if (!proto.Equals("any", StringComparison.OrdinalIgnoreCase))
        {
            if (byte.TryParse(proto, NumberStyles.None, CultureInfo.InvariantCulture, out protoLow))
                protoHigh = protoLow;
            else
                problems.Add($"invalid protocol '{proto}' (expected 0-255 or any)");
        }
        bool srcOk = TryPrefix(text[fields[2]], "source", problems, out var srcFamily, out var src, out int srcLength);
        bool dstOk = TryPrefix(text[fields[3]], "destination", problems, out var dstFamily, out var dst, out int dstLength);
        if (srcOk && dstOk && srcFamily != dstFamily)
            problems.Add($"source '{text[fields[2]]}' is {srcFamily} but destination '{text[fields[3]]}' is {dstFamily} (a rule is one family)");
        TryPorts(text[fields[4]], "source", problems, out ushort sLow, out ushort sHigh);
        TryPorts(text[fields[5]], "destination", problems, out ushort dLow, out ushort dHigh);
        if (problems.Count > 0)
        {
            error = string.Join("; ", problems);
            return false;
        }
        rule = new RuleMatch(srcFamily, protoLow, protoHigh, src, srcLength, dst, dstLength, sLow, sHigh, dLow, dHigh);
        error = null;
        return true;
    }

    private static bool TryPrefix(ReadOnlySpan<char> text, string which, List<string> problems,
        out IpFamily family, out UInt128 value, out int length)
    {
        value = 0;
        length = 0;
        family = IpFamily.IPv4;
        int slash = text.IndexOf('/');
        if (slash < 0 || !AddressText.TryParse(text[..slash], out family, out value)
            || !TryLength(text[(slash + 1)..], RuleMatch.Width(family), out length))
        {
            problems.Add($"invalid {which} prefix '{text}' (expected ADDRESS/LENGTH, IPv4 or IPv6)");
            return false;
        }
        var network = value & RuleMatch.Mask(family, length);
        if (network != value)
        {
            problems.Add($"invalid {which} prefix '{text}': host bits are set (did you mean {AddressText.Format(family, network)}/{length}?)");
            return false;
        }
        return true;
    }

    private static bool TryLength(ReadOnlySpan<char> text, int width, out int length)
    {
        length = 0;
        // No sign, no leading zeros: "/024" is more likely a typo than a /24.
        return text.Length is > 0 and <= 3 && (text.Length == 1 || text[0] != '0')
            && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out length) && length <= width;
    }

    private static bool TryPorts(ReadOnlySpan<char> text, string which, List<string> problems, out ushort low, out ushort high)
    {
        low = 0;
        high = ushort.MaxValue;
        int dash = text.IndexOf('-');
        if (dash > 0
            && ushort.TryParse(text[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out low)
            && ushort.TryParse(text[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out high)
            && low <= high)
            return true;
        problems.Add($"invalid {which} port range '{text}' (expected LOW-HIGH within 0-65535, LOW <= HIGH)");
        return false;
    }

    private static bool TryParseTraceLine(ReadOnlySpan<char> text, out TraceEntry entry)
    {
        entry = default;
        Span<Range> fields = stackalloc Range[7];
        if (Split(text, fields) != 6
            || !AddressText.TryParse(text[fields[0]], out var srcFamily, out var src)
            || !AddressText.TryParse(text[fields[1]], out var dstFamily, out var dst) || srcFamily != dstFamily
            || !ushort.TryParse(text[fields[2]], NumberStyles.None, CultureInfo.InvariantCulture, out ushort sport)
            || !ushort.TryParse(text[fields[3]], NumberStyles.None, CultureInfo.InvariantCulture, out ushort dport)
            || !byte.TryParse(text[fields[4]], NumberStyles.None, CultureInfo.InvariantCulture, out byte proto)
            || !int.TryParse(text[fields[5]], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int expected)
            || expected < -1)
            return false;
        entry = new TraceEntry(new PacketKey(srcFamily, proto, src, dst, hasPorts: true, sport, dport), expected);
        return true;
    }

    /// <summary>Fields separated by runs of spaces or tabs; returns how many (up to <paramref name="fields"/>' length).</summary>
    private static int Split(ReadOnlySpan<char> text, Span<Range> fields)
    {
        int count = 0, i = 0;
        while (i < text.Length && count < fields.Length)
        {
            while (i < text.Length && text[i] is ' ' or '\t')
                i++;
            if (i == text.Length)
                break;
            int start = i;
            while (i < text.Length && text[i] is not (' ' or '\t'))
                i++;
            fields[count++] = new Range(start, i);
        }
        return count;
    }
}

/// <summary>A trace header and the rule a linear matcher found for it (-1: none).</summary>
internal readonly record struct TraceEntry(PacketKey Key, int ExpectedRule);

/// <summary>A rules file with bad lines: <see cref="Errors"/> has one "line N: ..." entry per bad line.</summary>
internal sealed class RulesFormatException(string source, IReadOnlyList<string> errors)
    : FormatException($"parse {source}: {errors.Count} bad line{(errors.Count == 1 ? "" : "s")}:\n  " + string.Join("\n  ", errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;
}
