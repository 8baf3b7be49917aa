using PluginHost.Contract;

namespace PluginHost.Tests.Fixtures;

/// <summary>
/// A test plugin that stands for an attacker's DLL: its constructor appends a line to the file named by
/// PLUGINHOST_TEST_MARKER, so a test can tell whether the host ran any of its code.
/// </summary>
public sealed class MarkerPolicy : IRoutingPlugin
{
    public MarkerPolicy()
    {
        if (Environment.GetEnvironmentVariable("PLUGINHOST_TEST_MARKER") is { Length: > 0 } marker)
            File.AppendAllText(marker, "constructed\n");
    }

    public string Name => "MarkerPolicy";

    public string Description => "Test plugin that records that its constructor ran.";

    public StageTemplate Template { get; } = new("marker.c.sbn",
        "static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta) { return ph_next(); }\n");

    public IReadOnlyList<MapSchema> Maps { get; } = [];

    public StageSetup Configure(SettingsNode settings, IStageContext context) => StageSetup.Empty;
}
