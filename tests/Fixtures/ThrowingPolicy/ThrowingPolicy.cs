using PluginHost.Contract;

namespace PluginHost.Tests.Fixtures;

/// <summary>A badly built test plugin: reading its Description throws (it once turned /v1/plugins into a 500).</summary>
public sealed class ThrowingPolicy : IRoutingPlugin
{
    public string Name => "ThrowingPolicy";

    public string Description => throw new InvalidOperationException("description not available");

    public StageTemplate Template { get; } = new("throwing.c.sbn",
        "static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta) { return ph_next(); }\n");

    public IReadOnlyList<MapSchema> Maps { get; } = [];

    public StageSetup Configure(SettingsNode settings, IStageContext context) => StageSetup.Empty;
}
