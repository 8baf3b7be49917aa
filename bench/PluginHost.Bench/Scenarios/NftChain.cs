using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using PluginHost.Lab;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// The kernel's comparison for the classifier: ClassBench rules as one nftables chain (<c>nft</c>, Debian's
/// <c>nftables</c> package), in table <c>ip phbench</c> of a lab's router namespace. The rules live in a regular chain
/// (<see cref="RulesChain"/>), loaded once with <c>nft -f</c>; a base chain on the forward hook that jumps to it exists only
/// while it is measured (<see cref="Hook"/>, <see cref="Unhook"/>), so the other configurations pay nothing. Every rule
/// accepts: the first that matches ends the walk, as the first match decides in FiveTuplePolicy. One rule also counts its
/// packets in a named counter (<see cref="Counter"/>), to prove the frames walked down to it.
/// </summary>
public static partial class NftChain
{
    public const string Table = "phbench";
    public const string RulesChain = "acl";
    public const string HookChain = "bench_forward";
    public const string Counter = "deep";

    /// <summary>
    /// One rule: <c>ip protocol P ip saddr S ip daddr D th sport A-B th dport C-D accept</c>, leaving out what matches
    /// anything. An any-protocol rule with ports is limited to TCP, UDP and SCTP, as the plugin limits port rules to them.
    /// </summary>
    public static string Rule(ClassBenchRule r, bool counted)
    {
        var parts = new List<string>();
        if (!r.AnyProtocol)
            parts.Add($"ip protocol {r.ProtocolLow}");
        else if (r.RequiresPorts)
            parts.Add("meta l4proto { 6, 17, 132 }");
        if (r.SourceLength > 0)
            parts.Add($"ip saddr {Prefix(r.Source, r.SourceLength)}");
        if (r.DestinationLength > 0)
            parts.Add($"ip daddr {Prefix(r.Destination, r.DestinationLength)}");
        if (r.SourcePortLow != 0 || r.SourcePortHigh != ushort.MaxValue)
            parts.Add($"th sport {Ports(r.SourcePortLow, r.SourcePortHigh)}");
        if (r.DestinationPortLow != 0 || r.DestinationPortHigh != ushort.MaxValue)
            parts.Add($"th dport {Ports(r.DestinationPortLow, r.DestinationPortHigh)}");
        if (counted)
            parts.Add($"counter name \"{Counter}\"");
        parts.Add("accept");
        return string.Join(' ', parts);
    }

    /// <summary>The table as an <c>nft -f</c> file: the named counter and the rules chain, rules in order; <paramref name="counted"/> counts.</summary>
    public static void Write(string path, IReadOnlyList<ClassBenchRule> rules, int counted)
    {
        var text = new StringBuilder(rules.Count * 80);
        text.Append("table ip ").Append(Table).Append(" {\n");
        text.Append("\tcounter ").Append(Counter).Append(" {\n\t}\n");
        text.Append("\tchain ").Append(RulesChain).Append(" {\n");
        for (int i = 0; i < rules.Count; i++)
            text.Append("\t\t").Append(Rule(rules[i], i == counted)).Append('\n');
        text.Append("\t}\n}\n");
        File.WriteAllText(path, text.ToString());
    }

    public static void Load(NetworkNamespace ns, string path) => Nft(ns, "-f", path);

    /// <summary>Put the chain on the forward hook.</summary>
    public static void Hook(NetworkNamespace ns) =>
        Nft(ns, $"add chain ip {Table} {HookChain} {{ type filter hook forward priority 0; policy accept; }}; add rule ip {Table} {HookChain} jump {RulesChain}");

    /// <summary>Take it off the hook (the rules stay loaded).</summary>
    public static void Unhook(NetworkNamespace ns) => Nft(ns, $"flush chain ip {Table} {HookChain}; delete chain ip {Table} {HookChain}");

    public static void Remove(NetworkNamespace ns) => Nft(ns, $"delete table ip {Table}");

    /// <summary>Packets the counted rule matched so far.</summary>
    public static long Counted(NetworkNamespace ns)
    {
        string output = Nft(ns, $"list counter ip {Table} {Counter}");
        return PacketsPattern().Match(output) is { Success: true } m
            ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)
            : throw new BenchException($"read nft counter {Counter}: unexpected output '{output.Trim()}'");
    }

    private static string Nft(NetworkNamespace ns, params string[] args)
    {
        try
        {
            return ns.Exec(["nft", .. args]);
        }
        catch (LabException e)
        {
            throw new BenchException($"run nft {string.Join(' ', args)} in {ns.Name}: {e.Message}" +
                (File.Exists("/usr/sbin/nft") ? "" : " (apt-get install nftables)"), e);
        }
    }

    private static string Prefix(uint address, int length) =>
        length == 32 ? ClassBench.Address(address) : $"{ClassBench.Address(address)}/{length.ToString(CultureInfo.InvariantCulture)}";

    private static string Ports(ushort low, ushort high) => low == high
        ? low.ToString(CultureInfo.InvariantCulture)
        : $"{low.ToString(CultureInfo.InvariantCulture)}-{high.ToString(CultureInfo.InvariantCulture)}";

    [GeneratedRegex(@"packets (\d+)")]
    private static partial Regex PacketsPattern();
}
