using PluginHost.Observe;
using System.Text;

namespace PluginHost.Compose;

/// <summary>
/// Counters of the entry program (row 0 of the stats map). Pass* explain why a packet skipped the chain;
/// every other packet went into the first stage, which runs inside the entry program.
/// </summary>
public enum EntryCounter
{
    Packets = 0,
    Bytes,
    Ipv4,
    Ipv6,
    PassNonIp,
    PassArp,
    PassNeighbourDiscovery,
    PassTruncated,
    PassBadHeader,
    Fragments,
    PassHeadersTooLong,
    /// <summary>One 802.1Q/802.1ad tag, in skb metadata (stripped by the NIC or the stack) or in the packet: the stages
    /// know nothing of VLANs, and a redirect would carry the tag out of the uplink or lose it.</summary>
    PassVlan,
    /// <summary>Two tags or more (QinQ), counted apart from <see cref="PassVlan"/>.</summary>
    PassQinq,
    /// <summary>An IPv4 total length, or an IPv6 payload length plus its header, longer than the bytes after the Ethernet
    /// header: the kernel drops such a packet, so it must not be forwarded. Shorter (Ethernet padding) is normal.</summary>
    PassLengthBeyondFrame,
}

/// <summary>
/// Counters of each stage (row 1 + stage index). The datapath counts outcomes only; <see cref="Packets"/>
/// is derived from them by <see cref="CounterReader"/>, so a stage that hands a packet on writes nothing.
/// </summary>
public enum StageCounter
{
    /// <summary>Packets that reached the stage. Derived (no column in the datapath): what went into the chain,
    /// minus what earlier stages redirected, dropped or passed.</summary>
    Packets = 0,
    RedirectedBytes,
    Matched,
    Redirected,
    Passed,
    Dropped,
    RedirectErrors,
    MissedTailCalls,
    TtlExpired,
    /// <summary>Packets this stage decided although another generation's entry parsed them: a prog array mixing
    /// generations, which the swap protocol rules out (checked where a stage decides, not on the way through).</summary>
    GenerationMismatch,
    /// <summary>Packets whose route is withdrawn (its interface missing or down: ifindex 0), passed to the kernel, which
    /// routes them by its own table. Counted by the redirect helpers, as part of <see cref="Passed"/>.</summary>
    TargetDown,
}

/// <summary>The stats map is one per-CPU array keyed by row (0 = entry, 1 + i = stage i); each value is a row of <see cref="PerRow"/> u64 counters.</summary>
public static class CounterLayout
{
    /// <summary>Counters per row; a power of two (the datapath masks column numbers with it).</summary>
    public const int PerRow = 16;

    /// <summary>The C macro for a counter: PH_E_PASS_NON_IP, PH_S_REDIRECT_ERRORS.</summary>
    public static string CName(EntryCounter c) => "PH_E_" + Snake(c.ToString()).ToUpperInvariant();

    public static string CName(StageCounter c) => "PH_S_" + Snake(c.ToString()).ToUpperInvariant();

    /// <summary>Entry counters that explain why a packet went to the kernel instead of the chain.</summary>
    public static readonly IReadOnlyList<EntryCounter> PassReasons =
    [
        EntryCounter.PassNonIp, EntryCounter.PassArp, EntryCounter.PassNeighbourDiscovery,
        EntryCounter.PassTruncated, EntryCounter.PassBadHeader, EntryCounter.PassHeadersTooLong,
        EntryCounter.PassVlan, EntryCounter.PassQinq, EntryCounter.PassLengthBeyondFrame,
    ];

    /// <summary>Stage counters the datapath writes (all but the derived <see cref="StageCounter.Packets"/>).</summary>
    public static readonly IReadOnlyList<StageCounter> StageColumns = Enum.GetValues<StageCounter>().Where(c => c != StageCounter.Packets).ToList();

    /// <summary>
    /// Outcomes: each packet that reaches a stage ends in exactly one of these there, or goes on to the next stage. A redirect
    /// that could not happen (<see cref="StageCounter.TargetDown"/>, <see cref="StageCounter.RedirectErrors"/>,
    /// <see cref="StageCounter.TtlExpired"/>) is a pass, counted in <see cref="StageCounter.Passed"/> as well.
    /// </summary>
    public static readonly IReadOnlyList<StageCounter> StageOutcomes = [StageCounter.Redirected, StageCounter.Dropped, StageCounter.Passed];

    /// <summary>A counter's name in every JSON output, the API and the state file: camelCase (passNonIp, redirectedBytes).</summary>
    public static string JsonName<TCounter>(TCounter c) where TCounter : struct, Enum =>
        System.Text.Json.JsonNamingPolicy.CamelCase.ConvertName(c.ToString());

    /// <summary>A counter's <c>counter</c> label in <c>/metrics</c>: snake_case, as Prometheus names go (pass_non_ip, redirected_bytes).</summary>
    public static string MetricName<TCounter>(TCounter c) where TCounter : struct, Enum => Snake(c.ToString());

    /// <summary>snake_case of a PascalCase name: PassNonIp → pass_non_ip.</summary>
    public static string Snake(string pascal)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < pascal.Length; i++)
        {
            if (char.IsUpper(pascal[i]) && i > 0)
                sb.Append('_');
            sb.Append(char.ToLowerInvariant(pascal[i]));
        }
        return sb.ToString();
    }
}
