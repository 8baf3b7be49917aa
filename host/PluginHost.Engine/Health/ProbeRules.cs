using System.Net;
using System.Net.Sockets;
using PluginHost.Contract;

namespace PluginHost.Health;

/// <summary>
/// What the host accepts of a stage's probes (<see cref="StageSetup.Probes"/>): a plugin should refuse bad probe settings at
/// their own field; this is the host's net under it, reported at the stage. Returns the good ones.
/// </summary>
internal static class ProbeRules
{
    public static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(100), MaxInterval = TimeSpan.FromHours(1);
    public static readonly TimeSpan MinTimeout = TimeSpan.FromMilliseconds(10);
    public const int MaxCount = 100;

    public static IReadOnlyList<Probe> Checked(string plugin, IReadOnlyList<Probe>? probes, SettingsNode node, Action<SettingsNode, string> error)
    {
        var ok = new List<Probe>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in probes ?? [])
        {
            string? problem = p is null ? "a null probe" : Problem(p);
            if (problem is null && !names.Add(p!.Name))
                problem = $"two probes named '{p.Name}'";
            if (problem is null)
                ok.Add(p! with { });
            else
                error(node, $"plugin {plugin} declared {(p is null ? problem : $"probe '{p.Name}': {problem}")}");
        }
        return ok;
    }

    public static string? Problem(Probe p) =>
        string.IsNullOrEmpty(p.Name) || p.Name.Length > 64 || !p.Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or ':' or '/')
            ? "a name must be 1 to 64 letters, digits, '.', '-', '_', ':' or '/'"
        : string.IsNullOrEmpty(p.Interface) || p.Interface.Length > 15 || p.Interface.Any(c => c is '/' or ':' || char.IsWhiteSpace(c) || char.IsControl(c))
            ? $"invalid interface name '{p.Interface}'"
        : p.Target is null || p.Target.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            ? "the target must be an IPv4 or IPv6 address"
        : Unicast(p.Target) is { } bad ? $"target {p.Target} is {bad}: a probe goes to one host"
        : p.Kind == ProbeKind.Tcp && p.Port is < 1 or > 65535 ? $"TCP port {p.Port}: expected 1 to 65535"
        : p.Kind == ProbeKind.Icmp && p.Port != 0 ? $"an ICMP probe has no port ({p.Port})"
        : p.Kind is not (ProbeKind.Icmp or ProbeKind.Tcp) ? $"unknown kind {(int)p.Kind}"
        : p.Interval < MinInterval || p.Interval > MaxInterval ? $"interval {Ms(p.Interval)}: expected 100 ms to 1 h"
        : p.Timeout < MinTimeout || p.Timeout >= p.Interval ? $"timeout {Ms(p.Timeout)}: expected 10 ms to less than the interval ({Ms(p.Interval)})"
        : p.FailuresToDown is < 1 or > MaxCount ? $"failures to down {p.FailuresToDown}: expected 1 to {MaxCount}"
        : p.SuccessesToUp is < 1 or > MaxCount ? $"successes to up {p.SuccessesToUp}: expected 1 to {MaxCount}"
        : null;

    private static string? Unicast(IPAddress a) =>
        a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any) ? "unspecified"
        : a.Equals(IPAddress.Broadcast) ? "broadcast"
        : a.AddressFamily == AddressFamily.InterNetwork && a.GetAddressBytes()[0] >= 224 && a.GetAddressBytes()[0] < 240 || a.IsIPv6Multicast ? "multicast"
        : null;

    private static string Ms(TimeSpan t) => $"{t.TotalMilliseconds:0.#} ms";
}
