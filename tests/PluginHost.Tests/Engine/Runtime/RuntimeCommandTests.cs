using PluginHost.Datapath;
using PluginHost.Runtime;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Runtime;

/// <summary>Runtime commands applied as map updates on a live hook, kept in the desired-state file.</summary>
[Trait("Category", "Kernel")]
public sealed class RuntimeCommandTests : IDisposable
{
    private readonly KernelChain _net = new();
    private readonly ReloadRig _rig = new();

    public RuntimeCommandTests() => _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, """
              - plugin: SourcePolicy
                settings:
                  routes:
                    - from: 198.18.1.0/24
                      interface: out1
        """);

    public void Dispose()
    {
        _rig.Dispose();
        _net.Dispose();
    }

    private int Redirect(string source)
    {
        using var entry = _rig.LiveEntry();
        var run = entry.TestRun(Packets.Ipv4Udp(source, "198.18.9.1"));
        return run.ReturnValue == 7 ? (int)run.Cb[4] : 0;
    }

    [KernelFact]
    public void RouteLoadWritesALargeFileAsMapUpdatesWithoutANewGeneration()
    {
        var engine = _rig.Engine();
        var first = engine.Apply().Single();
        string file = Path.Combine(_rig.Work, "routes.txt");
        using (var w = new StreamWriter(file))
            for (int i = 0; i < 50_000; i++)
                w.WriteLine($"10.{i >> 8 & 255}.{i & 255}.0/24 out2");

        var result = engine.RunCommand(new CommandRequest("route", "load", new Dictionary<string, string> { ["file"] = file }));

        Assert.Equal(ApplyKind.MapsUpdated, result.Applied);
        Assert.Equal(50_000, result.EntriesChanged);
        Assert.Equal(first.ProgramId, _rig.AttachedProgramId());
        Assert.Equal(_net.Ifindex(KernelChain.Out2), Redirect("10.3.4.5"));
        Assert.Equal(_net.Ifindex(KernelChain.Out1), Redirect("198.18.1.9"));
        Assert.Equal(50_001, ReloadRig.Dump(_rig.State.Maps.Single().Pin).Count);
    }

    // Changes are diffed against what the host last wrote, not read back from the kernel (seconds for a
    // million prefixes); an operator's reload reads the map back and undoes edits made behind its back.
    [KernelFact]
    public void ChangesDiffAgainstTheLastWriteAndAReloadPutsBackOutsideEdits()
    {
        var engine = _rig.Engine();
        engine.Apply();
        engine.RunCommand(new CommandRequest("route", "add", new Dictionary<string, string> { ["from"] = "198.18.7.0/24", ["interface"] = "out2" }));
        using (var map = PluginHost.Kernel.BpfMap.OpenPinned(_rig.State.Maps.Single().Pin))
            map.Delete([24, 0, 0, 0, 198, 18, 7, 0]); // behind the host's back: struct { u32 prefixlen; be32 addr; }

        var added = engine.RunCommand(new CommandRequest("route", "add", new Dictionary<string, string> { ["from"] = "198.18.8.0/24", ["interface"] = "out2" }));

        Assert.Equal(1, added.EntriesChanged);
        Assert.Equal(_net.Ifindex(KernelChain.Out2), Redirect("198.18.8.1"));
        Assert.Equal(0, Redirect("198.18.7.1")); // not read back: the host still believes it is there

        engine.ForgetMapContents();
        var reloaded = engine.Apply().Single();

        Assert.Equal((ApplyKind.MapsUpdated, 1), (reloaded.Kind, reloaded.EntriesChanged));
        Assert.Equal(_net.Ifindex(KernelChain.Out2), Redirect("198.18.7.1"));
    }

    // Canaries enter at the top of the chain: stage 1's /28 canary is taken by stage 0's /24, as real packets
    // would be. That is a shadowed canary, not a broken generation.
    [KernelFact]
    public void ACanaryThatAnEarlierStageTakesIsShadowedNotAFailure()
    {
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, """
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/24
                          interface: out1
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: 198.18.1.0/28
                          interface: out2
                        - from: 198.18.7.0/24
                          interface: out2
            """);

        var result = _rig.Engine().Apply().Single();

        Assert.Equal(ApplyKind.Attached, result.Kind);
        Assert.Equal(2 + 1 + 1, result.CanariesRun); // host's 2, stage 0's, stage 1's 198.18.7.0/24 (its /28 is shadowed)
        Assert.Equal(_net.Ifindex(KernelChain.Out1), Redirect("198.18.1.1"));
        Assert.Equal(_net.Ifindex(KernelChain.Out2), Redirect("198.18.7.1"));
    }

    // Dropping traffic is never implicit: a pipeline left out of the configuration keeps forwarding, is reported,
    // and can be uninstalled by name.
    [KernelFact]
    public void APipelineDroppedFromTheConfigurationKeepsRunningUntilUninstalledByName()
    {
        _rig.Engine().Apply();
        string pins = _rig.State.PinDirectory;
        File.WriteAllText(_rig.ConfigPath, File.ReadAllText(_rig.ConfigPath).Replace("- name: p", "- name: q").Replace($"interface: {KernelChain.Input}", "interface: out1"));
        var engine = new PluginHost.Hosting.HostEngine(PluginHost.Config.ConfigLoader.Load(_rig.ConfigPath), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);

        Assert.Equal(["p"], engine.Unconfigured());
        Assert.Equal(_net.Ifindex(KernelChain.Out1), Redirect("198.18.1.9")); // still forwarding
        var unknown = Assert.Throws<CommandException>(() => engine.Uninstall(["nope"]));
        Assert.Equal("uninstall pipeline nope: not deployed and not configured (deployed: p)", unknown.Message);

        Assert.Equal(["p"], engine.Uninstall(["p"]));

        Assert.False(Directory.Exists(pins));
        Assert.Empty(engine.Unconfigured());
    }

    [KernelFact]
    public void AddedAndRemovedRoutesAreKeptAcrossARestart()
    {
        _rig.Engine().Apply();
        var engine = _rig.Engine();
        engine.RunCommand(new CommandRequest("route", "add", new Dictionary<string, string> { ["from"] = "198.18.7.0/24", ["interface"] = "out2" }));
        engine.RunCommand(new CommandRequest("route", "del", new Dictionary<string, string> { ["from"] = "198.18.1.0/24" }));

        var restarted = _rig.Engine();
        Assert.Equal(ApplyKind.Unchanged, restarted.Apply().Single().Kind);
        var routes = restarted.RunCommand(new CommandRequest("route", "list", new Dictionary<string, string>())).Items;

        Assert.Equal(["198.18.7.0/24"], routes.Select(r => r["from"]));
        Assert.Equal(_net.Ifindex(KernelChain.Out2), Redirect("198.18.7.1"));
        Assert.Equal(0, Redirect("198.18.1.9"));
    }

    [KernelFact]
    public void BadCommandsAreRefusedAndChangeNothing()
    {
        var engine = _rig.Engine();
        engine.Apply();

        var unknown = Assert.Throws<CommandException>(() => engine.RunCommand(new CommandRequest("route", "flip", new Dictionary<string, string>())));
        Assert.Contains("no stage offers it (available: route add, route del, route list, route load)", unknown.Message);
        var wrongStage = Assert.Throws<CommandException>(() => engine.RunCommand(new CommandRequest("route", "list", new Dictionary<string, string>(), Stage: 1)));
        Assert.Equal("run 'route list': stage 1 does not offer it; pipeline p stage 0 (SourcePolicy) does", wrongStage.Message);
        var missing = Assert.Throws<CommandException>(() => engine.RunCommand(new CommandRequest("route", "add", new Dictionary<string, string> { ["from"] = "198.18.7.0/24" })));
        Assert.Contains("--interface is required", missing.Message);
        var absent = Assert.Throws<CommandException>(() => engine.RunCommand(new CommandRequest("route", "del", new Dictionary<string, string> { ["from"] = "198.18.8.0/24" })));
        Assert.Contains("no item with from '198.18.8.0/24'", absent.Message);
        Assert.Throws<PluginHost.Config.ConfigException>(() => engine.RunCommand(new CommandRequest("route", "add",
            new Dictionary<string, string> { ["from"] = "198.18.7.0/24", ["interface"] = "no/pe0" })));
        _net.Namespace.Exec("ip", "addr", "add", "198.18.2.1/24", "dev", KernelChain.Out1);
        var offLink = Assert.Throws<PluginHost.Config.ConfigException>(() => engine.RunCommand(new CommandRequest("route", "add",
            new Dictionary<string, string> { ["from"] = "198.18.7.0/24", ["interface"] = "out1", ["via"] = "198.18.3.9" })));
        Assert.Contains("next hop 198.18.3.9 is not on-link for out1 (its subnets: 198.18.2.0/24)", offLink.Message);

        Assert.False(File.Exists(engine.OverlayPath));
        Assert.Equal(_net.Ifindex(KernelChain.Out1), Redirect("198.18.1.9"));
    }

    // An interface that does not exist (yet) withdraws the route rather than refusing it; the operator is told.
    [KernelFact]
    public void RouteToAMissingInterfaceIsAppliedWithdrawnAndSaysSo()
    {
        var engine = _rig.Engine();
        engine.Apply();

        var result = engine.RunCommand(new CommandRequest("route", "add", new Dictionary<string, string> { ["from"] = "198.18.7.0/24", ["interface"] = "nope0" }));

        Assert.Equal(ApplyKind.MapsUpdated, result.Applied);
        Assert.Contains("interface 'nope0' does not exist", result.Message);
        Assert.Contains("1 route withdrawn", result.Message);
        Assert.Equal(0, Redirect("198.18.7.1"));
        var withdrawn = Assert.Single(PluginHost.Observe.StatusReport.Status(_rig.RuntimeDirectory).Single().Withdrawn);
        Assert.Equal(("nope0", 1), (withdrawn.Interface, withdrawn.Routes));
    }
}
