using System.Diagnostics;
using System.Globalization;
using System.Net;
using PluginHost.Lab;

namespace PluginHost.Bench.Setup;

/// <summary>
/// <c>bench/traffic/rawsend.c</c>, compiled at run time with clang-19 (already needed for the chains): one fixed 64-byte UDP frame (from the client's
/// source A to <see cref="Sink"/>) sent as fast as it goes from the client's lan0 through a raw socket that bypasses
/// the qdisc, pinned to the last CPU. The veth hands each frame to the router on the sender's CPU, so the sender's
/// rate is bounded by the router's cost.
/// </summary>
public sealed class RawSender
{
    public const int FrameBytes = 60; // 64 on the wire with the FCS

    /// <summary>
    /// Frames go to 198.18.8.1: the router routes 198.18.8.0/24 to the server (<see cref="PrepareSink"/>), and the server
    /// blackholes it, so it drops each frame right after its route lookup (no socket lookup, no ICMP back).
    /// </summary>
    public static readonly IPAddress Sink = IPAddress.Parse("198.18.8.1");
    public const string SinkNetwork = "198.18.8.0/24";

    private readonly string _program;

    // The MAC addresses the frames carry, per lab (read once: they do not change while a lab lives).
    private readonly Dictionary<string, (string Client, string Router)> _macs = [];

    private RawSender(string program) => _program = program;

    private static string? Taskset => File.Exists("/usr/bin/taskset") ? "/usr/bin/taskset" : null;

    /// <summary>Whether frames are sent from one CPU (taskset present).</summary>
    public static bool OneCpu => Taskset is not null;

    /// <summary>Compile rawsend into <paramref name="workDirectory"/> (the run's: once per run, whichever section asks first).</summary>
    public static RawSender Build(Repo repo, string workDirectory)
    {
        string source = Path.Combine(repo.Root, "bench", "traffic", "rawsend.c");
        string output = Path.Combine(workDirectory, "rawsend");
        if (File.Exists(output))
            return new RawSender(output);
        var psi = new ProcessStartInfo("clang-19", ["-O2", "-Wall", "-o", output, source]) { RedirectStandardError = true, RedirectStandardOutput = true };
        try
        {
            using var cc = Process.Start(psi)!;
            string errors = cc.StandardError.ReadToEnd() + cc.StandardOutput.ReadToEnd();
            cc.WaitForExit();
            if (cc.ExitCode != 0)
                throw new BenchException($"compile {source}: clang-19 exited with {cc.ExitCode}: {errors}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new BenchException($"compile {source}: cannot run clang-19 ({e.Message}); apt-get install clang-19", e);
        }
        return new RawSender(output);
    }

    /// <summary>The sink's routes: the router's main table sends it out of up1, the server blackholes it.</summary>
    public static void PrepareSink(RouterLab lab)
    {
        Ip.Run("-n", lab.Server.Name, "route", "add", "blackhole", SinkNetwork);
        Ip.Run("-n", lab.Router.Name, "route", "add", SinkNetwork, "via", RouterLab.Uplink1Gateway.ToString(), "dev", RouterLab.RouterUplink1);
    }

    /// <summary>Send for <paramref name="seconds"/>; returns what was sent and the time it took.</summary>
    public (long Count, double Seconds) Send(RouterLab lab, double seconds) => Send(lab, seconds, RouterLab.ClientSourceA, Sink, 9);

    /// <summary>The same with another header: UDP from <paramref name="source"/>:40000 to <paramref name="destination"/>:<paramref name="port"/>.</summary>
    public (long Count, double Seconds) Send(RouterLab lab, double seconds, IPAddress source, IPAddress destination, ushort port)
    {
        if (!_macs.TryGetValue(lab.Prefix, out var macs))
            _macs[lab.Prefix] = macs = (lab.Client.Exec("cat", $"/sys/class/net/{RouterLab.ClientLan}/address").Trim(),
                lab.Router.Exec("cat", $"/sys/class/net/{RouterLab.RouterLan}/address").Trim());
        var (clientMac, routerMac) = macs;
        string[] args = [_program, RouterLab.ClientLan, clientMac, routerMac, source.ToString(), destination.ToString(),
            port.ToString(CultureInfo.InvariantCulture), FrameBytes.ToString(CultureInfo.InvariantCulture), seconds.ToString(CultureInfo.InvariantCulture)];
        // One CPU (the last): the sender and, through the veth, the router's receive path share it.
        string output = Taskset is { } taskset
            ? lab.Client.Exec([taskset, "-c", (Environment.ProcessorCount - 1).ToString(CultureInfo.InvariantCulture), .. args])
            : lab.Client.Exec(args);
        var parts = output.Trim().Split(' ');
        if (parts.Length < 4 || parts[0] != "sent" || !long.TryParse(parts[1], out long count)
            || !double.TryParse(parts[3], NumberStyles.Float, CultureInfo.InvariantCulture, out double elapsed))
            throw new BenchException($"run rawsend: unexpected output '{output.Trim()}'");
        return (count, elapsed);
    }
}
