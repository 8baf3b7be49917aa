using PluginHost.Bench.Measure;
using PluginHost.Bench.Setup;

namespace PluginHost.Bench.Report;

/// <summary>Everything one run measured; what the Markdown and JSON reports print.</summary>
public sealed record BenchReport(Machine Machine, string Command, string Mode, Sampling Sampling,
    PerPacketResult? PerPacket, LookupResult? Lookup, ForwardingResult? Forwarding, ReloadResult? Reload, ControlPlaneResult? ControlPlane, FootprintResult? Footprint,
    TimeSpan Elapsed)
{
    /// <summary>Section 7 (issue 12): FiveTuplePolicy's classifier on ClassBench.</summary>
    public ClassifierResult? Classifier { get; init; }

    /// <summary>Section 8 (issue 13): the LoadBalancer stage per packet, its Maglev builds and backend changes.</summary>
    public LoadBalancerResult? LoadBalancer { get; init; }
}

// ---- 1. Per-packet cost ----

/// <summary>One program's ns/packet per frame shape (by shape id) and what it did with each frame.</summary>
public sealed record PerPacketRow(string Id, string Label, string Group, IReadOnlyDictionary<string, Summary> Ns, IReadOnlyDictionary<string, string> Verdicts);

/// <summary>A figure computed from pairs of samples taken in the same round, per frame shape.</summary>
public sealed record DerivedRow(string Id, string Label, string Unit, IReadOnlyDictionary<string, Summary> Values, double? Target = null);

public sealed record PerPacketResult(IReadOnlyList<string> Shapes, IReadOnlyDictionary<string, string> ShapeLabels,
    IReadOnlyList<PerPacketRow> Rows, IReadOnlyList<DerivedRow> Derived);

// ---- 2. Lookup scaling ----

/// <summary>Kernel LPM-trie figures from issue 5 (probed in C), ns per packet.</summary>
public sealed record TrieReference(double Repeated, double Random);

/// <param name="Repeated">One source address, repeated within each call.</param>
/// <param name="Random">Random addresses: <see cref="Repeated"/> plus <see cref="RandomPenalty"/> (per round, then the median).</param>
/// <param name="RandomPenalty">What different addresses add: one call per frame, random frames minus the same frame every call.</param>
/// <param name="RandomOnePerCall">Raw: the random frames, one call each (carries the cost of a one-packet timed loop).</param>
/// <param name="SameOnePerCall">Raw: one frame, one call each, as many calls.</param>
public sealed record LookupRow(int Prefixes, double PlanMs, double WriteMs, Summary Repeated, Summary Random, Summary RandomPenalty,
    Summary RandomOnePerCall, Summary SameOnePerCall, TrieReference? Reference)
{
    /// <summary>IPv4 (SourcePolicy) or IPv6 (the IPv6 plugin).</summary>
    public string Family { get; init; } = "IPv4";
}

public sealed record LookupResult(IReadOnlyList<LookupRow> Rows, int RandomFrames, int RandomRepeat, string PrefixMix)
{
    public string Prefix6Mix { get; init; } = "";
}

// ---- 4. Reload ----

/// <summary>One kind of change applied through HostEngine, with the deployer's phases.</summary>
/// <param name="HostMs">The host's part of an apply, paired per run: whole apply − render → swap (load the plugins, validate, plan).</param>
public sealed record ReloadRow(string Id, string Label, string Outcome, int Runs, Summary ApplyMs, Summary DeployMs, Summary HostMs,
    Summary ComposeMs, Summary CompileMs, Summary LoadMs, Summary CanaryMs, Summary SwapMs, double? TargetMs);

public sealed record ReloadResult(IReadOnlyList<ReloadRow> Rows, double AttachMs, string Pipeline)
{
    /// <summary>Packets lost while swapping generations under a steady stream (null when not measured).</summary>
    public SwapLossResult? Loss { get; init; }
}

/// <summary>Generation swaps under a sequence-numbered UDP stream through the router lab.</summary>
/// <param name="Generations">How far the generation number moved during the stream (one per swap).</param>
/// <param name="Redirected">Packets the chain's last stage redirected in all (since attach): the stream went through the chain.</param>
/// <param name="Faults">Missed tail calls and generation mismatches counted by the stages.</param>
public sealed record SwapLossResult(int Swaps, int Generations, double Seconds, Summary ApplyMs, int PacketsPerSecond,
    long Sent, long Received, long Lost, long Reordered, long Duplicates, long ReceiveBufferErrors, ulong Redirected, ulong Faults)
{
    /// <summary>The same swaps under a raw-frame flood.</summary>
    public SwapFloodResult? Flood { get; init; }
}

/// <summary>Generation swaps while a raw-frame flood runs through the chain: frames sent against frames the server counted.</summary>
/// <param name="Received">What the server's up1 counted over the flood (ARP and the like included: a few more, never fewer, when nothing is lost).</param>
public sealed record SwapFloodResult(int Swaps, double SwapSeconds, double FloodSeconds, long Sent, long Received, double Mpps, int WireBytes)
{
    public long Lost => Math.Max(0, Sent - Received);
}

// ---- 5. Control plane ----

/// <summary>Route add/del through the host's API: client-side wall time (connect, POST, apply, answer) and the host's own figure.</summary>
public sealed record ControlPlaneLatency(int Pairs, Summary AddMs, double AddP99Ms, Summary DelMs, double DelP99Ms, Summary HostAddMs, Summary HostDelMs);

/// <summary>A <c>route load</c> of a generated routes file through the API.</summary>
/// <param name="TargetSeconds">The target for this size (null: --quick's smaller table, which has none).</param>
public sealed record LoadRow(int Prefixes, double Seconds, double HostMs, string Applied, int EntriesChanged, double? TargetSeconds);

public sealed record ControlPlaneResult(string Pipeline, ControlPlaneLatency Single, LoadRow? Load, ControlPlaneLatency? AfterLoad);

// ---- 6. Host footprint ----

/// <param name="CpuPercent">CPU time over the idle window, in % of one CPU.</param>
/// <param name="TickMs">Resolution of the CPU figure (one clock tick).</param>
/// <param name="CpuMsPerSecond">CPU ms used in each second of the idle window, in order.</param>
/// <param name="SettleSeconds">Left alone before the idle window starts, after the pid file appeared.</param>
public sealed record FootprintResult(string Pipeline, double StartMs, double SettleSeconds, double IdleSeconds, double RssMiB, double HwmMiB, int Threads,
    double CpuMs, double CpuPercent, double TickMs, IReadOnlyList<double> CpuMsPerSecond);

// ---- 3. Forwarding throughput ----

/// <summary>One configuration: Mpps the server received (and the sender sent), and ratios paired per round.</summary>
public sealed record ForwardingRow(string Id, string Label, Summary ReceivedMpps, Summary SentMpps, Summary VsKernel, Summary VsRules100);

public sealed record ForwardingResult(IReadOnlyList<ForwardingRow> Rows, int Rounds, double Seconds, int WireBytes, bool OneCpu);

// ---- 8. LoadBalancer (issue 13) ----

/// <summary>A per-packet figure for IPv4 and IPv6 (64-byte UDP frames); <paramref name="Unit"/> "ns" or "×".</summary>
public sealed record LoadBalancerPacketRow(string Id, string Label, string Unit, Summary Ipv4, Summary Ipv6);

/// <summary>The C# Maglev build alone: ms per table.</summary>
public sealed record LoadBalancerBuildRow(string Id, string Label, int Runs, Summary Ms);

/// <param name="Frames">Fresh flows per family and round (new flows), each sent once and then once more (established).</param>
/// <param name="Changes">Backend changes through <c>HostEngine.RunCommand</c>: wall time per command.</param>
public sealed record LoadBalancerResult(IReadOnlyList<LoadBalancerPacketRow> PerPacket, int Frames, int Rounds, int Calls, int Repeat,
    IReadOnlyList<LoadBalancerBuildRow> Builds, IReadOnlyList<ClassifierUpdateRow> Changes);

// ---- 7. Classifier (issue 12) ----

/// <summary>One rule set: per-packet cost over its trace, the time to configure it and the classifier's memory.</summary>
/// <param name="Ns">ns per packet.</param>
/// <param name="AboveSmall">ns per packet above the 10-rule set, paired per round.</param>
/// <param name="Frames">Distinct trace headers sampled (each one frame, repeated within its call).</param>
/// <param name="Portless">Of them, headers of protocols without ports (no TCP, UDP or SCTP header).</param>
/// <param name="PlanMs">Validate and plan (<c>PipelinePlanner.Plan</c>): parse the rules file, build the tree, encode the entries.</param>
/// <param name="AllocatedMiB">Managed memory allocated while planning (the median plan's).</param>
/// <param name="TablesMiB">The classifier's tables, from the plugin's summary; <paramref name="ReservedMiB"/> what its maps reserve.</param>
/// <param name="Mismatches">Sampled frames whose verdict was not their first matching rule's action (0: every frame classified right).</param>
public sealed record ClassifierSetRow(string Id, string Label, int Rules, int Frames, int Portless, Summary Ns, Summary? AboveSmall,
    Summary PlanMs, double CompileMs, double LoadWriteMs, double AllocatedMiB, double? TablesMiB, double? ReservedMiB, string? StageSummary,
    int Mismatches)
{
    /// <summary>What the kernel charges for the stage's maps (memlock of both banks, hit counters, bank selector); null: unknown.</summary>
    public double? KernelMiB { get; init; }

    /// <summary>Frames no rule of the set matches (they go on to the next stage).</summary>
    public int Unmatched { get; init; }
}

/// <summary>A ratio paired per round, with its goal (≤ for per-packet growth, ≥ for throughput).</summary>
public sealed record ClassifierRatio(string Id, string Label, Summary Value, double Goal, bool AtMost)
{
    public bool Met => AtMost ? Value.Median <= Goal : Value.Median >= Goal;
}

/// <summary>A run of single-rule changes: wall time of <c>HostEngine.RunCommand</c> per operation.</summary>
/// <param name="EntriesChanged">Map entries the change rewrote for packets, median (the host's figure).</param>
public sealed record ClassifierUpdateRow(string Id, string Label, int Operations, Summary Ms, double P99Ms, Summary HostMs, double EntriesChanged,
    string Applied, double? GoalP99Ms);

public sealed record ClassifierUpdatesResult(int Rules, double SpacingMs, string Rule, double AttachMs, IReadOnlyList<ClassifierUpdateRow> Rows);

public sealed record ClassifierForwardingRow(string Id, string Label, Summary ReceivedMpps, Summary SentMpps);

/// <param name="Header">The frame every configuration forwards.</param>
/// <param name="MatchLine">0-based line of the 10k set that matches it first (every line before it misses it).</param>
/// <param name="NftLoadMs">`nft -f` of the 10k-rule table.</param>
public sealed record ClassifierForwardingResult(IReadOnlyList<ClassifierForwardingRow> Rows, IReadOnlyList<ClassifierRatio> Ratios, int Rounds,
    double Seconds, int WireBytes, bool OneCpu, string Header, int MatchLine, int Rules, double NftLoadMs, double AttachMs);

/// <param name="Missing">Why nothing was measured (no ClassBench data), else null.</param>
/// <param name="Rounds">Per-packet rounds: each runs every set over its frames, sets in a shuffled order.</param>
/// <param name="Repeat">Repeats per frame within a call.</param>
public sealed record ClassifierResult(string? DataDirectory, string? Missing, IReadOnlyList<ClassifierSetRow> Sets, IReadOnlyList<ClassifierRatio> Ratios,
    int Rounds, int Repeat, int PlanSamples, ClassifierUpdatesResult? Updates, ClassifierForwardingResult? Forwarding)
{
    /// <summary>How long the whole section took.</summary>
    public double Seconds { get; init; }
}
