using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Text;
using PluginHost.Bench.Setup;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// One ClassBench rule as the harness reads it (its own reader: the plugin's parser is internal to the plugin).
/// Addresses are numbers, first byte most significant; ranges are inclusive; <see cref="Index"/> is the 0-based line.
/// </summary>
public sealed record ClassBenchRule(int Index, byte ProtocolLow, byte ProtocolHigh, uint Source, int SourceLength, uint Destination,
    int DestinationLength, ushort SourcePortLow, ushort SourcePortHigh, ushort DestinationPortLow, ushort DestinationPortHigh)
{
    /// <summary>Either port range is not the whole range: the rule matches only packets that carry ports (TCP, UDP, SCTP).</summary>
    public bool RequiresPorts => SourcePortLow != 0 || SourcePortHigh != ushort.MaxValue || DestinationPortLow != 0 || DestinationPortHigh != ushort.MaxValue;

    public bool AnyProtocol => ProtocolLow == 0 && ProtocolHigh == byte.MaxValue;

    public uint SourceMask => Mask(SourceLength);

    public uint DestinationMask => Mask(DestinationLength);

    /// <summary>The plugin's semantics: a packet without ports never matches a rule that requires them.</summary>
    public bool Matches(TraceHeader h) =>
        h.Protocol >= ProtocolLow && h.Protocol <= ProtocolHigh
        && (h.Source & SourceMask) == Source && (h.Destination & DestinationMask) == Destination
        && (!RequiresPorts || (h.HasPorts && h.SourcePort >= SourcePortLow && h.SourcePort <= SourcePortHigh
                                && h.DestinationPort >= DestinationPortLow && h.DestinationPort <= DestinationPortHigh));

    /// <summary>The rule's line in ClassBench format, numbered <paramref name="priority"/>, without an action.</summary>
    public string Line(int priority) => string.Create(CultureInfo.InvariantCulture,
        $"{priority} {(AnyProtocol ? "any" : ProtocolLow.ToString(CultureInfo.InvariantCulture))} {ClassBench.Address(Source)}/{SourceLength} " +
        $"{ClassBench.Address(Destination)}/{DestinationLength} {SourcePortLow}-{SourcePortHigh} {DestinationPortLow}-{DestinationPortHigh}");

    private static uint Mask(int length) => length == 0 ? 0 : uint.MaxValue << (32 - length);
}

/// <summary>One trace header. <see cref="Expected"/> is ClassBench's first match, which assumes every header carries ports.</summary>
public readonly record struct TraceHeader(uint Source, uint Destination, ushort SourcePort, ushort DestinationPort, byte Protocol, int Expected)
{
    /// <summary>What a real frame of this protocol carries: ports in TCP, UDP and SCTP only.</summary>
    public bool HasPorts => Protocol is 6 or 17 or 132;

    /// <summary>The frame the datapath sees: ports in the transport header, none for other protocols.</summary>
    public byte[] Frame() => Packets.Frames.Ipv4Transport(Source, Destination, Protocol, HasPorts ? SourcePort : (ushort)0,
        HasPorts ? DestinationPort : (ushort)0, 64, ttl: 255);

    public override string ToString() => HasPorts
        ? string.Create(CultureInfo.InvariantCulture, $"{ClassBench.Address(Source)}:{SourcePort} → {ClassBench.Address(Destination)}:{DestinationPort} protocol {Protocol}")
        : string.Create(CultureInfo.InvariantCulture, $"{ClassBench.Address(Source)} → {ClassBench.Address(Destination)} protocol {Protocol}");
}

/// <summary>A ClassBench rule set and its trace (see /work/shared/data/README.md).</summary>
public sealed record ClassBenchSet(string Id, string Label, string RulesPath, string TracePath);

/// <summary>
/// The ClassBench data (acl1 1k, 10k, 100k rules with 100,000-header traces): where it is, how to read it, the
/// first match by a linear scan (the reference the plugin's answers are checked against), and rules files.
/// </summary>
public static class ClassBench
{
    public const string EnvironmentVariable = "PLUGINHOST_CLASSBENCH";
    public const string FallbackDirectory = "/work/shared/data/classbench";

    /// <summary>The data directory: $PLUGINHOST_CLASSBENCH, ../shared/data/classbench from the repository, or the fallback; null when none has the files.</summary>
    public static string? Locate(Repo repo, out IReadOnlyList<string> searched)
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } fromEnvironment)
            candidates.Add(fromEnvironment);
        candidates.Add(Path.GetFullPath(Path.Combine(repo.Root, "..", "shared", "data", "classbench")));
        candidates.Add(FallbackDirectory);
        searched = candidates = candidates.Distinct().ToList();
        return candidates.FirstOrDefault(d => Sets(d).All(s => File.Exists(s.RulesPath) && File.Exists(s.TracePath)));
    }

    /// <summary>The three sets in <paramref name="directory"/>.</summary>
    public static IReadOnlyList<ClassBenchSet> Sets(string directory) =>
    [
        new("1k", "acl1-1k", Path.Combine(directory, "acl1-1k.rules"), Path.Combine(directory, "acl1-1k.trace.gz")),
        new("10k", "acl1-10k", Path.Combine(directory, "acl1-10k.rules"), Path.Combine(directory, "acl1-10k.trace.gz")),
        new("100k", "acl1-100k", Path.Combine(directory, "acl1-100k.rules.gz"), Path.Combine(directory, "acl1-100k.trace.gz")),
    ];

    public static List<ClassBenchRule> ReadRules(string path)
    {
        var rules = new List<ClassBenchRule>();
        int lineNumber = 0;
        foreach (var line in Lines(path))
        {
            lineNumber++;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 0)
                continue;
            try
            {
                if (f.Length < 6 || int.Parse(f[0], CultureInfo.InvariantCulture) != rules.Count)
                    throw new FormatException("expected PRIORITY PROTO SRC/LEN DST/LEN SPORT DPORT, PRIORITY the rule's position");
                var (protoLow, protoHigh) = f[1] == "any" ? ((byte)0, byte.MaxValue) : (byte.Parse(f[1], CultureInfo.InvariantCulture), byte.Parse(f[1], CultureInfo.InvariantCulture));
                var (source, sourceLength) = Prefix(f[2]);
                var (destination, destinationLength) = Prefix(f[3]);
                var (sportLow, sportHigh) = Range(f[4]);
                var (dportLow, dportHigh) = Range(f[5]);
                rules.Add(new ClassBenchRule(rules.Count, protoLow, protoHigh, source, sourceLength, destination, destinationLength,
                    sportLow, sportHigh, dportLow, dportHigh));
            }
            catch (Exception e) when (e is FormatException or OverflowException)
            {
                throw new BenchException($"read rules {path}: line {lineNumber}: {e.Message}");
            }
        }
        return rules;
    }

    public static List<TraceHeader> ReadTrace(string path)
    {
        var headers = new List<TraceHeader>();
        int lineNumber = 0;
        foreach (var line in Lines(path))
        {
            lineNumber++;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 0)
                continue;
            try
            {
                if (f.Length < 6)
                    throw new FormatException("expected SRC DST SPORT DPORT PROTO EXPECTED_RULE");
                headers.Add(new TraceHeader(Number(IPAddress.Parse(f[0])), Number(IPAddress.Parse(f[1])), ushort.Parse(f[2], CultureInfo.InvariantCulture),
                    ushort.Parse(f[3], CultureInfo.InvariantCulture), byte.Parse(f[4], CultureInfo.InvariantCulture), int.Parse(f[5], CultureInfo.InvariantCulture)));
            }
            catch (Exception e) when (e is FormatException or OverflowException)
            {
                throw new BenchException($"read trace {path}: line {lineNumber}: {e.Message}");
            }
        }
        return headers;
    }

    /// <summary>The first rule that matches, by a linear scan (the plugin's semantics), or −1.</summary>
    public static int FirstMatch(IReadOnlyList<ClassBenchRule> rules, TraceHeader h)
    {
        for (int i = 0; i < rules.Count; i++)
            if (rules[i].Matches(h))
                return i;
        return -1;
    }

    /// <summary>The rule a real frame of <paramref name="h"/> matches: the trace's answer when it carries ports, else a linear scan.</summary>
    public static int FirstMatchOfFrame(IReadOnlyList<ClassBenchRule> rules, TraceHeader h) => h.HasPorts ? h.Expected : FirstMatch(rules, h);

    /// <summary>Write a rules file (the plugin's format: ClassBench lines renumbered from 0, each followed by its action, if any).</summary>
    public static void WriteRulesFile(string path, IReadOnlyList<ClassBenchRule> rules, Func<int, string?> action)
    {
        var text = new StringBuilder(rules.Count * 64);
        for (int i = 0; i < rules.Count; i++)
        {
            text.Append(rules[i].Line(i));
            if (action(i) is { } a)
                text.Append(' ').Append(a);
            text.Append('\n');
        }
        File.WriteAllText(path, text.ToString());
    }

    public static string Address(uint address) => new IPAddress([(byte)(address >> 24), (byte)(address >> 16), (byte)(address >> 8), (byte)address]).ToString();

    public static uint Number(IPAddress address)
    {
        var b = address.GetAddressBytes();
        if (b.Length != 4)
            throw new FormatException($"'{address}' is not an IPv4 address");
        return (uint)b[0] << 24 | (uint)b[1] << 16 | (uint)b[2] << 8 | b[3];
    }

    private static IEnumerable<string> Lines(string path)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
            yield return line;
    }

    private static (uint Address, int Length) Prefix(string text)
    {
        int slash = text.IndexOf('/');
        if (slash < 0)
            throw new FormatException($"invalid prefix '{text}'");
        int length = int.Parse(text[(slash + 1)..], CultureInfo.InvariantCulture);
        if (length is < 0 or > 32)
            throw new FormatException($"invalid prefix length in '{text}'");
        return (Number(IPAddress.Parse(text[..slash])), length);
    }

    private static (ushort Low, ushort High) Range(string text)
    {
        int dash = text.IndexOf('-');
        if (dash < 0)
            throw new FormatException($"invalid port range '{text}'");
        return (ushort.Parse(text[..dash], CultureInfo.InvariantCulture), ushort.Parse(text[(dash + 1)..], CultureInfo.InvariantCulture));
    }
}
