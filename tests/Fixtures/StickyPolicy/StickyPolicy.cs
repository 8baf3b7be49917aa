using PluginHost.Contract;

namespace PluginHost.Tests.Fixtures;

/// <summary>
/// A badly behaved test plugin: it subscribes to a process-wide event and never unsubscribes, which
/// keeps its load context alive forever. The host must notice and say so.
/// </summary>
public sealed class StickyPolicy : IRoutingPlugin
{
    public StickyPolicy() => AppDomain.CurrentDomain.ProcessExit += OnExit;

    public string Name => "StickyPolicy";

    public string Description => "Test plugin that prevents its own unloading.";

    public StageTemplate Template { get; } = new("sticky.c.sbn",
        "static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta) { return ph_next(); }\n");

    public IReadOnlyList<MapSchema> Maps { get; } = [];

    public StageSetup Configure(SettingsNode settings, IStageContext context) => StageSetup.Empty;

    private void OnExit(object? sender, EventArgs e) => _ = Name;
}
