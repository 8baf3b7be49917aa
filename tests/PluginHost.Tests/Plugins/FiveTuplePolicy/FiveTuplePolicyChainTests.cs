using PluginHost.TestSupport;
using PluginHost.Compose;
using PluginHost.Observe;
using System.Net;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Runtime;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.FiveTuplePolicy;

/// <summary>FiveTuplePolicy's compiled rules, loaded into the kernel and driven with BPF_PROG_TEST_RUN.</summary>
[Trait("Category", "Kernel")]
public sealed class FiveTuplePolicyChainTests : IDisposable
{
    private const int TcActShot = 2;
    private const int TcActRedirect = 7;
    private const int TcxNext = -1;
    private const int RedirectIfindexCb = 4;

    private const string Stages = """
              - plugin: FiveTuplePolicy
                settings:
                  rules:
                    - name: trusted-host
                      from: 198.18.1.99
                      action: pass
                    - name: web
                      protocol: tcp
                      from: 198.18.1.0/24
                      dport: 443
                      interface: out2
                      via: 198.18.3.2
                    - name: no-games
                      protocol: udp
                      dport: 5000-5999
                      action: drop
                    - protocol: icmp
                      to: 192.0.2.0/24
                      interface: out1
        """;

    private readonly KernelChain _net = new();

    public void Dispose() => _net.Dispose();

    private static byte[] Tcp(string source, ushort dport, string destination = "192.0.2.1") =>
        CanaryFrames.Ipv4(IPAddress.Parse(source), IPAddress.Parse(destination), 6, 40000, dport);

    [KernelFact]
    public void TheFirstMatchingRuleDecides()
    {
        using var chain = _net.Load(Stages);
        var web = Tcp("198.18.1.10", 443);

        var redirected = chain.Entry.TestRun(web);
        var otherPort = chain.Entry.TestRun(Tcp("198.18.1.10", 80));
        var otherSource = chain.Entry.TestRun(Tcp("198.18.2.10", 443));
        var trusted = chain.Entry.TestRun(Tcp("198.18.1.99", 443));   // rule 0 before rule 1
        var game = chain.Entry.TestRun(Packets.Ipv4Udp("10.1.1.1", "192.0.2.7", dport: 5500));
        var notGame = chain.Entry.TestRun(Packets.Ipv4Udp("10.1.1.1", "192.0.2.7", dport: 6000));
        var ping = chain.Entry.TestRun(CanaryFrames.Ipv4(IPAddress.Parse("10.1.1.1"), IPAddress.Parse("192.0.2.9"), 1));

        Assert.Equal((TcActRedirect, (uint)_net.Ifindex(KernelChain.Out2)), (redirected.ReturnValue, redirected.Cb[RedirectIfindexCb]));
        Assert.Equal(63, redirected.Output[Packets.TtlOffset]);
        Assert.True(Packets.Ipv4ChecksumValid(redirected.Output));
        Assert.Equal(TcxNext, otherPort.ReturnValue);
        Assert.Equal(TcxNext, otherSource.ReturnValue);
        Assert.Equal(TcxNext, trusted.ReturnValue);
        Assert.Equal(TcActShot, game.ReturnValue);
        Assert.Equal(TcxNext, notGame.ReturnValue);
        Assert.Equal((TcActRedirect, (uint)_net.Ifindex(KernelChain.Out1)), (ping.ReturnValue, ping.Cb[RedirectIfindexCb]));
        var stage = chain.ReadCounters().Stages[0];
        Assert.Equal((7ul, 4ul, 2ul, 1ul, 4ul), (stage[StageCounter.Packets], stage[StageCounter.Matched], stage[StageCounter.Redirected],
            stage[StageCounter.Dropped], stage[StageCounter.Passed]));
    }

    // A later fragment carries no ports: port rules cannot match it, rules without ports still can.
    [KernelFact]
    public void PortRulesNeverMatchALaterFragment()
    {
        using var chain = _net.Load(Stages);
        var fragment = Packets.AsFragment(Packets.Ipv4Udp("10.1.1.1", "192.0.2.7", dport: 5500), moreFragments: false, 128);

        var run = chain.Entry.TestRun(fragment);

        Assert.Equal(TcxNext, run.ReturnValue);
        Assert.Equal(1ul, chain.ReadCounters().Entry[EntryCounter.Fragments]);
    }

    [KernelFact]
    public void RuntimeRulesAreMapWritesInOrderWithNoNewGeneration()
    {
        using var rig = new ReloadRig();
        rig.UsePlugin(Path.Combine(Repo.PluginsDirectory, "FiveTuplePolicy"));
        rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stages);
        var engine = rig.Engine();
        uint program = engine.Apply().Single().ProgramId;
        int Verdict(byte[] frame)
        {
            using var entry = rig.LiveEntry();
            return entry.TestRun(frame).ReturnValue;
        }

        var added = engine.RunCommand(new CommandRequest("rule", "add", new Dictionary<string, string>
            { ["name"] = "block-ssh", ["protocol"] = "tcp", ["dport"] = "22", ["action"] = "drop" }));
        Assert.Equal(ApplyKind.MapsUpdated, added.Applied);
        Assert.Equal(program, rig.AttachedProgramId());
        Assert.Equal(TcActShot, Verdict(Tcp("10.9.9.9", 22)));
        Assert.Equal(["trusted-host", "web", "no-games", "", "block-ssh"], added.Items.Select(i => i.GetValueOrDefault("name", "")));

        var deleted = engine.RunCommand(new CommandRequest("rule", "del", new Dictionary<string, string> { ["name"] = "block-ssh" }));
        Assert.Equal(ApplyKind.MapsUpdated, deleted.Applied);
        Assert.Equal(TcxNext, Verdict(Tcp("10.9.9.9", 22)));
        Assert.Equal(program, rig.AttachedProgramId());
    }
}
