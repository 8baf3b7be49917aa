using PluginHost.Contract;

namespace PluginHost.Tests.Fixtures;

/// <summary>
/// A test plugin built in four versions from this one file (v1..v4 folders): it records, in a
/// datapath-owned map, how many packets each IPv4 source sent, and hands every packet on.
/// v1 and v2 differ in code only; v3 changes the state map's layout without a migration; v4 makes
/// the same change with one. Settings can inject a verifier bug, a template bug or a canary that cannot pass, and
/// make <c>Configure</c> hang or end the process while a marker file exists (<c>hangWhile</c>, <c>exitWhile</c>).
/// </summary>
public sealed class MarkPolicy : IRoutingPlugin
#if MARK_V4
    , IMapMigration
#endif
{
#if MARK_V2
    private const int Version = 2;
#elif MARK_V3
    private const int Version = 3;
#elif MARK_V4
    private const int Version = 4;
#else
    private const int Version = 1;
#endif

    public string Name => "MarkPolicy";

    public string Description => $"Test plugin v{Version}: counts packets per source in a state map.";

    public StageTemplate Template { get; } = StageTemplate.FromResource(typeof(MarkPolicy).Assembly, "mark_policy.c.sbn");

    public IReadOnlyList<MapSchema> Maps { get; } =
    [
        new MapSchema("seen", MapKind.LruHash,
            Key: [new Field("saddr", FieldType.Ipv4)],
#if MARK_V3 || MARK_V4
            Value: [new Field("packets", FieldType.U64), new Field("bytes", FieldType.U64)],
#else
            Value: [new Field("packets", FieldType.U64)],
#endif
            MaxEntries: 4096, Contents: MapContents.State),
    ];

    public StageSetup Configure(SettingsNode settings, IStageContext context)
    {
        if (!settings.IsMissing)
            settings.RejectUnknownKeys(context, "verifierBug", "templateBug", "canaryBug", "hangWhile", "exitWhile", "throwOnThreadWhile");
        if (settings["hangWhile"].Scalar is { } hang)
            while (File.Exists(hang))
                Thread.Sleep(10); // a plugin stuck in its settings code
        if (settings["exitWhile"].Scalar is { } exit && File.Exists(exit))
            Environment.Exit(3); // a plugin that ends the process
        if (settings["throwOnThreadWhile"].Scalar is { } thrower && File.Exists(thrower))
            new Thread(() => throw new InvalidOperationException("MarkPolicy's own thread failed")).Start(); // ends the process too
        // canaryBug: a canary expecting a drop from a stage that hands every packet on.
        var canaries = settings["canaryBug"].Scalar == "true"
            ? [new CanaryPacket("expects a drop", CanaryFrames.Ipv4Udp(System.Net.IPAddress.Parse("198.18.1.1"), System.Net.IPAddress.Parse("198.18.9.1")), CanaryVerdict.Drop)]
            : Array.Empty<CanaryPacket>();
        return new StageSetup([], new Dictionary<string, long>
        {
            ["version"] = Version,
            ["has_bytes"] = Version >= 3 ? 1 : 0,
            ["verifier_bug"] = settings["verifierBug"].Scalar == "true" ? 1 : 0,
            ["template_bug"] = settings["templateBug"].Scalar == "true" ? 1 : 0,
        }) { Canaries = canaries };
    }

#if MARK_V4
    public MapEntry? Migrate(MapSchema from, MapSchema to, MapEntry entry) =>
        entry with { Value = new Dictionary<string, object> { ["packets"] = entry.Value["packets"], ["bytes"] = 0UL } };
#endif
}
