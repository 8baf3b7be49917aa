using PluginHost.Observe;
using System.Buffers.Binary;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Kernel;

namespace PluginHost.Datapath;

/// <summary>
/// Runs known packets through a loaded, not yet attached, generation with BPF_PROG_TEST_RUN and
/// checks their verdicts: the host's own (ARP and truncated frames must reach the kernel) and each
/// stage's plugin canaries. A plugin's canary enters at the top of the chain, so an earlier stage may
/// decide it first (a SourcePolicy route covering a FiveTuplePolicy rule's packet): the stats rows tell
/// which stage decided, and a canary decided by an earlier stage is shadowed, not wrong, and is skipped.
/// </summary>
internal static class Canaries
{
    private const int TcActShot = 2;
    private const int TcActRedirect = 7;
    private const int TcxNext = -1;
    private const int RedirectIfindexCb = 4;

    public static IReadOnlyList<CanaryPacket> HostCanaries { get; } =
    [
        new("ARP reaches the kernel", Arp(), CanaryVerdict.Pass),
        new("a truncated UDP header reaches the kernel",
            CanaryFrames.Ipv4Udp(System.Net.IPAddress.Parse("192.0.2.1"), System.Net.IPAddress.Parse("192.0.2.2"))[..36], CanaryVerdict.Pass),
    ];

    /// <summary>Throws <see cref="CanaryException"/> naming the first canary that came out wrong; reports how many were
    /// checked, each with its verdict, and which were shadowed.</summary>
    public static CanaryReport Run(LoadedChain chain, IReadOnlyList<StagePlan> stages)
    {
        var all = HostCanaries.Select(c => (Stage: -1, Who: "host", Canary: c))
            .Concat(stages.SelectMany((s, i) => s.Canaries.Select(c => (Stage: i, Who: $"stage {i} ({s.PluginName})", Canary: c))));
        var passed = new List<string>();
        var shadowed = new List<string>();
        // Which stage decided a canary shows in the counters; with one stage there is nothing to tell apart.
        var decided = stages.Count > 1 ? Decided(chain) : null;
        foreach (var (stage, who, canary) in all)
        {
            var run = chain.Entry.TestRun(canary.Frame);
            int? decider = null;
            if (decided is not null)
            {
                var now = Decided(chain);
                decider = DecidedBy(decided, now);
                decided = now;
            }
            if (decider is int earlier && earlier < stage)
            {
                // An earlier stage took this packet, as it would on the wire: not a broken generation, but worth saying.
                shadowed.Add($"canary of {who} '{canary.Name}' was decided by stage {earlier} ({stages[earlier].PluginName}): " +
                    "packets like it never reach that rule");
                continue;
            }
            var (verdict, ifindex) = Verdict(run);
            bool ok = verdict == canary.Expect && (verdict != CanaryVerdict.Redirect || ifindex == canary.RedirectIfindex);
            if (!ok)
                throw new CanaryException($"canary of {who} '{canary.Name}': expected {Describe(canary.Expect, canary.RedirectIfindex)}, " +
                    $"got {(Enum.IsDefined(verdict) ? Describe(verdict, ifindex) : $"return code {run.ReturnValue}")}");
            passed.Add($"canary of {who} '{canary.Name}': {Describe(verdict, ifindex)} — ok");
        }
        return new CanaryReport(passed.Count, shadowed) { Passed = passed };
    }

    /// <summary>What a test run of the entry program decided, with the redirect target read back from skb->cb; an undefined
    /// verdict (-1) for a return code the chain glue never gives.</summary>
    internal static (CanaryVerdict Verdict, int RedirectIfindex) Verdict(TestRunResult run) => run.ReturnValue switch
    {
        TcActRedirect => (CanaryVerdict.Redirect, (int)run.Cb[RedirectIfindexCb]),
        TcActShot => (CanaryVerdict.Drop, 0),
        TcxNext => (CanaryVerdict.Pass, 0),
        _ => ((CanaryVerdict)(-1), 0),
    };

    // Per stage: packets it redirected, dropped or passed, so far.
    private static ulong[] Decided(LoadedChain chain) =>
        chain.ReadCounters().Stages.Select(row => CounterLayout.StageOutcomes.Aggregate(0ul, (sum, c) => sum + row[c])).ToArray();

    private static int? DecidedBy(ulong[] before, ulong[] after)
    {
        for (int i = 0; i < after.Length; i++)
            if (after[i] != before[i])
                return i;
        return null;
    }

    internal static string Describe(CanaryVerdict verdict, int ifindex) =>
        verdict == CanaryVerdict.Redirect ? $"redirect to ifindex {ifindex}" : verdict.ToString().ToLowerInvariant();

    private static byte[] Arp()
    {
        var frame = new byte[42];
        Array.Fill(frame, (byte)0xff, 0, 6);
        frame[6] = 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), 1);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), 0x0800);
        frame[18] = 6;
        frame[19] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(20), 1);
        return frame;
    }
}

/// <summary>What the canaries of a generation showed.</summary>
/// <param name="Checked">Canaries whose verdict was checked (and right).</param>
/// <param name="Shadowed">Plugin canaries an earlier stage decided first, described.</param>
internal sealed record CanaryReport(int Checked, IReadOnlyList<string> Shadowed)
{
    /// <summary>One line per canary checked, with the verdict it came out with ("canary of host 'ARP reaches the kernel': pass — ok").</summary>
    public IReadOnlyList<string> Passed { get; init; } = [];
}

/// <summary>A canary came out wrong; the new generation was not attached.</summary>
internal sealed class CanaryException(string message) : HostException(message);
