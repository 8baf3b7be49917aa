using System.Globalization;
using System.Net;
using PluginHost.Contract;

namespace PluginHost.Tests.Fixtures;

/// <summary>
/// A test plugin whose datapath follows its health probes: every IPv4 packet is redirected to <c>via</c> out of
/// <c>interface</c> while no probe is down (Unknown counts as up), and passed to the kernel while one is. It declares an
/// ICMP probe ("icmp") and, with <c>port</c>, a TCP probe ("tcp") to the next hop. The state is a template constant, so a
/// change is a new generation: the lab test sees it in the counters of what runs.
/// </summary>
public sealed class ProbedPolicy : IRoutingPlugin
{
    public string Name => "ProbedPolicy";

    public string Description => "Test plugin: redirects while its probes are up, passes while one is down.";

    public StageTemplate Template { get; } = new("probed_policy.c.sbn", """
        static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta)
        {
        	struct iphdr *ip = ph_ipv4(skb, meta);

        	if (!ip)
        		return ph_next();
        	ph_matched();
        {{~ if constants.healthy == 1 }}
        	return ph_redirect_ipv4(skb, meta, {{ constants.ifindex }}, bpf_htonl({{ constants.nexthop }}u));
        {{~ else }}
        	return ph_pass();
        {{~ end }}
        }

        """);

    public IReadOnlyList<MapSchema> Maps { get; } = [];

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        settings.RejectUnknownKeys(context, "interface", "via", "port", "intervalMs", "timeoutMs", "failures", "successes");
        string name = settings["interface"].Scalar ?? "";
        var output = context.ResolveOutput(settings["interface"], name);
        if (!output.Ok)
            context.Error(settings["interface"], output.InterfaceError ?? output.NextHopError ?? "");
        if (!IPAddress.TryParse(settings["via"].Scalar ?? "", out var via) || via.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            context.Error(settings["via"], $"invalid IPv4 next hop '{settings["via"].Scalar}'");
            return StageSetup.Empty;
        }
        int Number(string key, int fallback) => int.TryParse(settings[key].Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : fallback;
        var icmp = new Probe("icmp", name, via, ProbeKind.Icmp)
        {
            Interval = TimeSpan.FromMilliseconds(Number("intervalMs", 1000)),
            Timeout = TimeSpan.FromMilliseconds(Number("timeoutMs", 500)),
            FailuresToDown = Number("failures", 3),
            SuccessesToUp = Number("successes", 2),
        };
        List<Probe> probes = [icmp];
        if (Number("port", 0) is > 0 and var port)
            probes.Add(icmp with { Name = "tcp", Kind = ProbeKind.Tcp, Port = port });
        bool healthy = output.Ifindex > 0 && probes.All(p => context.ProbeState(p.Name) != ProbeState.Down);
        byte[] b = via.GetAddressBytes();
        return new StageSetup([], new Dictionary<string, long>
        {
            ["healthy"] = healthy ? 1 : 0,
            ["ifindex"] = output.Ifindex,
            ["nexthop"] = (long)((uint)b[0] << 24 | (uint)b[1] << 16 | (uint)b[2] << 8 | b[3]),
        })
        { Probes = probes, Summary = healthy ? "redirecting" : "passing (a probe is down)" };
    }
}
