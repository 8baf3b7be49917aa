using PluginHost.Interop;

namespace PluginHost.Kernel;

/// <summary>
/// What the running kernel supports, found by trying it (as cilium/ebpf's <c>features</c> does) rather than
/// guessed from a version number or an errno. Each probe runs once per process; its answer is cached.
/// </summary>
public static unsafe class Features
{
    private static readonly FeatureProbe Tcx = new("tcx", "6.6", ProbeTcx);

    /// <summary>
    /// True when the kernel attaches programs with tcx links (BPF_TCX_INGRESS/EGRESS, Linux 6.6). Throws a
    /// <see cref="BpfException"/> when the probe cannot tell (no privileges, say); that outcome is not cached.
    /// </summary>
    public static bool HaveTcx => Tcx.Supported;

    /// <summary>
    /// Fail, naming the minimum kernel, when tcx links are missing; also when the probe cannot run, unless
    /// <paramref name="allowUnknown"/> (checks that must work without privileges, such as <c>validate</c>).
    /// </summary>
    public static void RequireTcx(bool allowUnknown = false) => Tcx.Require(allowUnknown);

    /// <summary>"tcx needs Linux 6.6 or newer" when the probe finds tcx missing; null when it has tcx or cannot tell.</summary>
    internal static string? TcxMissingRemedy => Tcx.KnownMissing ? Tcx.Remedy : null;

    /// <summary>How many times the tcx probe ran to a determination (for tests: at most once).</summary>
    internal static int TcxProbeRuns => Tcx.Runs;

    // Load a trivial SCHED_CLS program (r0 = 0; exit) and link it to a tcx hook of an interface that cannot exist.
    // A kernel with tcx looks the interface up and answers ENODEV (ENXIO on some paths); one without it refuses
    // the attach type itself with EINVAL. Anything else leaves the question open.
    private static bool ProbeTcx()
    {
        ReadOnlySpan<ulong> program =
        [
            0x0000_0000_0000_00b7, // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 0
            0x0000_0000_0000_0095, // BPF_JMP | BPF_EXIT
        ];
        LibbpfMessages.Install();
        int prog;
        fixed (ulong* insns = program)
            prog = Libbpf.bpf_prog_load(Libbpf.BPF_PROG_TYPE_SCHED_CLS, "ph_probe_tcx", "GPL", insns, (nuint)program.Length, null);
        LibbpfMessages.Take();
        if (prog < 0)
            throw new BpfException("probe tcx: load probe program", prog);
        using var handle = new SafeFd(prog);
        int link = Libbpf.bpf_link_create(handle.Fd, unchecked((int)0xFFFF_FFFF), Libbpf.BPF_TCX_INGRESS, null);
        if (link >= 0)
        {
            using var unexpected = new SafeFd(link);
            throw new BpfException("probe tcx: attach to ifindex 0xffffffff succeeded, which no interface has");
        }
        return -link switch
        {
            Libc.ENODEV or Libc.ENXIO => true,
            Libc.EINVAL => false,
            _ => throw new BpfException("probe tcx: attach probe program", link),
        };
    }
}

/// <summary>
/// One feature probe, run at most once to a determination. A probe that throws decided nothing (no privileges,
/// a transient failure): the exception reaches the caller and the next call tries again.
/// </summary>
internal sealed class FeatureProbe(string name, string minimumKernel, Func<bool> probe)
{
    private readonly Lock _gate = new();
    private bool? _supported;
    private int _runs;

    public bool Supported
    {
        get
        {
            lock (_gate)
            {
                if (_supported is null)
                {
                    bool supported = probe();
                    _runs++;
                    _supported = supported;
                }
                return _supported.Value;
            }
        }
    }

    public bool KnownMissing
    {
        get
        {
            try
            {
                return !Supported;
            }
            catch (BpfException)
            {
                return false;
            }
        }
    }

    public int Runs
    {
        get
        {
            lock (_gate)
                return _runs;
        }
    }

    /// <summary>The remedy an error quotes when the feature is missing.</summary>
    public string Remedy => $"{name} needs Linux {minimumKernel} or newer";

    public void Require(bool allowUnknown)
    {
        if (allowUnknown ? KnownMissing : !Supported)
            throw new BpfException($"use {name}: not supported by this kernel ({Remedy}; this is Linux {KernelRelease()})");
    }

    private static string KernelRelease()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        }
        catch (IOException)
        {
            return Environment.OSVersion.Version.ToString();
        }
    }
}
