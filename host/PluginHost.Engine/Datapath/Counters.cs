using System.Text;

namespace PluginHost.Datapath;

/// <summary>Counters of the entry program (row 0 of the stats map). Pass* explain why a packet skipped the chain.</summary>
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
    MissedTailCalls,
    PassHeadersTooLong,
}

/// <summary>Counters of each stage (row 1 + stage index).</summary>
public enum StageCounter
{
    Packets = 0,
    Bytes,
    Matched,
    Redirected,
    Passed,
    Dropped,
    RedirectErrors,
    MissedTailCalls,
    TtlExpired,
    GenerationMismatch,
}

/// <summary>The stats map is one per-CPU array keyed by row (0 = entry, 1 + i = stage i); each value is a row of <see cref="PerRow"/> u64 counters.</summary>
public static class CounterLayout
{
    /// <summary>Counters per row; a power of two (the datapath masks column numbers with it).</summary>
    public const int PerRow = 16;

    /// <summary>The C macro for a counter: PH_E_PASS_NON_IP, PH_S_REDIRECT_ERRORS.</summary>
    public static string CName(EntryCounter c) => "PH_E_" + Snake(c.ToString()).ToUpperInvariant();

    public static string CName(StageCounter c) => "PH_S_" + Snake(c.ToString()).ToUpperInvariant();

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
