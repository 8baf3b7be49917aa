using System.Globalization;
using System.Net;
using System.Net.Sockets;
using PluginHost.Contract;

namespace DscpRouter;

/// <summary>
/// Routes IPv4 packets by DSCP class: each class listed in the settings goes out of its interface (to its next hop, or to
/// the packet's destination), counted per class. Packets of other classes get the <c>unmatched</c> verdict: the next stage
/// (default), the kernel, or dropped.
/// </summary>
public sealed class DscpRouter : IRoutingPlugin, IRuntimeCommands, IMapMigration
{
    private const int Classes = 64; // DSCP is six bits

    // The name configuration uses in `plugin:`; also the plugin's folder and DLL name, and a C identifier.
    public string Name => "DscpRouter";

    public string Description => "IPv4 packets by DSCP class, each class out of its interface.";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(DscpRouter).Assembly, "DscpRouter.c.sbn");

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        // Written by the host from the settings: reloads change it by difference, with no new program.
        new MapSchema("classes", MapKind.Hash,
            Key: [new Field("dscp", FieldType.U32)],
            Value: [new Field("ifindex", FieldType.U32), new Field("via", FieldType.Ipv4)],
            MaxEntries: Classes),
        // Written by the datapath (per-class counts): kept as it is across reloads.
        new MapSchema("hits", MapKind.Array,
            Key: [new Field("index", FieldType.U32)],
            Value: [new Field("packets", FieldType.U64), new Field("bytes", FieldType.U64)],
            MaxEntries: Classes, Contents: MapContents.State),
    ];

    // `pluginhost class add --dscp 46 --interface up1 [--via 198.18.2.1]`, `class del --dscp 46`, `class list [--stats]`.
    public IReadOnlyList<RuntimeCommand> Commands { get; } =
    [
        new RuntimeCommand("class", "add", "route a DSCP class out of an interface", "classes", "dscp", RuntimeAction.Add,
            [new CommandArgument("dscp", "the class, 0 to 63"), new CommandArgument("interface", "the output interface"),
             new CommandArgument("via", "the next hop (default: the packet's destination)", Required: false)]),
        new RuntimeCommand("class", "del", "stop routing a DSCP class", "classes", "dscp", RuntimeAction.Remove,
            [new CommandArgument("dscp", "the class")]),
        new RuntimeCommand("class", "list", "the classes in effect", "classes", "dscp", RuntimeAction.List, []),
    ];

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        settings.RejectUnknownKeys(context, "classes", "unmatched");
        long unmatched = settings["unmatched"].Scalar switch
        {
            null or "next" => 0,
            "pass" => 1,
            "drop" => 2,
            var other => Refuse(context, settings["unmatched"], $"unknown verdict '{other}' (expected next, pass or drop)"),
        };
        var entries = new List<MapEntry>();
        var counters = new List<ItemCounter>();
        var probes = new List<Probe>();
        var canaries = new List<CanaryPacket>();
        var seen = new HashSet<int>();
        // The list may be absent: a runtime `class add` creates it, and removing the last class leaves it empty.
        foreach (var item in settings["classes"].Items)
        {
            item.RejectUnknownKeys(context, "dscp", "interface", "via", "probe");
            // Runtime commands hand every argument over as text, so parse text; keys compare as text, so accept only the canonical form.
            if (!int.TryParse(item["dscp"].Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out int dscp) || dscp >= Classes
                || dscp.ToString(CultureInfo.InvariantCulture) != item["dscp"].Scalar)
            {
                context.Error(item["dscp"], $"invalid DSCP class '{item["dscp"]}': expected a number from 0 to 63, written without leading zeros");
                continue;
            }
            if (!seen.Add(dscp))
            {
                context.Error(item["dscp"], $"class {dscp} is listed twice");
                continue;
            }
            IPAddress? via = null;
            if (item["via"].Scalar is { } text && (via = Ipv4(text)) is null)
            {
                context.Error(item["via"], $"invalid next hop '{text}': expected an IPv4 address a.b.c.d");
                continue;
            }
            if (item["interface"].Scalar is not { } name)
            {
                context.Error(item["interface"], "missing output interface");
                continue;
            }
            var output = context.ResolveOutput(item["interface"], name, via);
            if (output.InterfaceError is { } bad)
                context.Error(item["interface"], bad);
            if (output.NextHopError is { } offLink)
                context.Error(item["via"], offLink);
            if (!output.Ok)
                continue;
            int ifindex = output.Ifindex;
            string key = dscp.ToString(CultureInfo.InvariantCulture);
            if (item["probe"].Scalar == "true" && via is not null)
            {
                probes.Add(new Probe(key, name, via, ProbeKind.Icmp));
                // A next hop that stopped answering is withdrawn like a missing interface: the kernel routes its packets.
                if (context.ProbeState(key) == ProbeState.Down)
                    ifindex = 0;
            }
            if (dscp == 0)
                context.Warn(item["dscp"], "class 0 is best effort: every unmarked packet takes this route");
            entries.Add(new MapEntry("classes", new Dictionary<string, object> { ["dscp"] = dscp },
                new Dictionary<string, object> { ["ifindex"] = ifindex, ["via"] = via ?? IPAddress.Any }));
            counters.Add(new ItemCounter(key, "hits", (uint)dscp));
            // A withdrawn route (ifindex 0) passes its packets to the kernel, so it gets no redirect canary.
            if (ifindex != 0 && canaries.Count < 4)
                canaries.Add(new CanaryPacket($"class {dscp} out of {name}",
                    CanaryFrames.WithTos(CanaryFrames.Ipv4Udp(IPAddress.Parse("192.0.2.1"), IPAddress.Parse("192.0.2.2")), (byte)(dscp << 2)),
                    CanaryVerdict.Redirect, ifindex));
        }
        return new StageSetup(entries, new Dictionary<string, long> { ["unmatched"] = unmatched })
        {
            Canaries = canaries,
            ItemCounters = counters,
            Probes = probes,
            Summary = $"{entries.Count} DSCP class{(entries.Count == 1 ? "" : "es")} routed",
        };
    }

    // Called only when a State map's layout changed between two builds of this plugin: keep the fields both layouts have.
    public MapEntry? Migrate(MapSchema from, MapSchema to, MapEntry entry) =>
        entry with { Value = to.Value.Where(f => entry.Value.ContainsKey(f.Name)).ToDictionary(f => f.Name, f => entry.Value[f.Name]) };

    private static long Refuse(IStageContext context, SettingsNode node, string message)
    {
        context.Error(node, message);
        return 0;
    }

    // Strict IPv4 text: IPAddress.TryParse also takes "10.1" (10.0.0.1), octal and hex forms.
    private static IPAddress? Ipv4(string text)
    {
        var parts = text.Split('.');
        return parts.Length == 4 && parts.All(p => byte.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out byte b)
                && b.ToString(CultureInfo.InvariantCulture) == p)
            && IPAddress.TryParse(text, out var address) && address.AddressFamily == AddressFamily.InterNetwork ? address : null;
    }
}
