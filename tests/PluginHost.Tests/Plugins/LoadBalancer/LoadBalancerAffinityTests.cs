using System.Net;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Health;
using PluginHost.Hosting;
using PluginHost.Kernel;
using PluginHost.Runtime;
using PluginHost.Tests.Support;
using PluginHost.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>
/// LoadBalancer's flow table and runtime verbs on a live pipeline, driven with BPF_PROG_TEST_RUN: established flows keep
/// their backend through an add, a weight change and a drain; a removed or down backend's flows move; every verb is map
/// writes (same program); the counters count.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class LoadBalancerAffinityTests(ITestOutputHelper output) : IDisposable
{
    private const int TcActRedirect = LoadBalancerChainTests.TcActRedirect;
    private const int TcxNext = LoadBalancerChainTests.TcxNext;
    private const int RedirectIfindexCb = LoadBalancerChainTests.RedirectIfindexCb;
    private const int FlowCount = 3000;

    private readonly KernelChain _net = new(KernelChain.Out3);
    private readonly ReloadRig _rig = new();

    public void Dispose()
    {
        _rig.Dispose();
        _net.Dispose();
    }

    // Three paths of the family: out1, out2, out3.
    private static string Via(bool v6, int backend) => v6 ? new[] { "fe80::2", "2001:db8:3::2", "fe80::4" }[backend] : $"198.18.{backend + 2}.2";

    private static string Backend(bool v6, string name, int path, int weight = 1) =>
        $"            - {{ name: {name}, service: svc, interface: out{path + 1}, via: \"{Via(v6, path)}\", weight: {weight} }}\n";

    private static string Stage(bool v6, string backends, string extra = "") => $"""
              - plugin: LoadBalancer
                settings:
                  services:
                    - name: svc
                      to: {(v6 ? "2001:db8:9::/48" : "192.0.2.0/24")}
                  backends:
        {backends}{extra}
        """;

    private HostEngine Start(bool v6, string backends, string extra = "")
    {
        _rig.UsePlugin(Path.Combine(Repo.PluginsDirectory, "LoadBalancer"));
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stage(v6, backends, extra));
        var engine = _rig.Engine();
        Assert.Equal(ApplyKind.Attached, engine.Apply().Single().Kind);
        return engine;
    }

    // Flow i: a UDP or TCP flow from its own source and port to the service (first: where a batch starts).
    private static byte[] Flow(bool v6, int i)
    {
        byte protocol = i % 2 == 0 ? (byte)17 : (byte)6;
        ushort sport = (ushort)(1024 + i % 60000), dport = (ushort)(80 + i % 7);
        if (v6)
            return Packets.Ipv6(IPAddress.Parse($"2001:db8:1::{i / 60000:x}:{i % 60000:x}"), IPAddress.Parse($"2001:db8:9::{i % 200 + 1:x}"), protocol, sport, dport);
        return CanaryFrames.Ipv4(IPAddress.Parse($"10.{i / 65536 % 256}.{i / 256 % 256}.{i % 256}"), IPAddress.Parse($"192.0.2.{i % 200 + 1}"), protocol, sport, dport);
    }

    // The ifindex each of flows [first, first + count) goes to (every one redirected).
    private uint[] Paths(int first, int count = FlowCount)
    {
        using var entry = _rig.LiveEntry();
        return Enumerable.Range(first, count).Select(i =>
        {
            var run = entry.TestRun(Flow(_v6, i));
            Assert.Equal(TcActRedirect, run.ReturnValue);
            return run.Cb[RedirectIfindexCb];
        }).ToArray();
    }

    private bool _v6;

    private uint[]? _outs;

    // The ifindex of out1, out2 or out3 (read once: each read runs a process in the namespace).
    private uint Out(int path) => (_outs ??= [.. Enumerable.Range(1, 3).Select(i => (uint)_net.Ifindex($"out{i}"))])[path];

    private CommandResult Run(HostEngine engine, string noun, string verb, params (string Name, string Value)[] args)
    {
        var result = engine.RunCommand(new CommandRequest(noun, verb, args.ToDictionary(a => a.Name, a => a.Value)));
        output.WriteLine(result.Message);
        return result;
    }

    private (ulong Packets, ulong Bytes, ulong Flows) Counters(string map, uint slot)
    {
        using var pinned = BpfMap.OpenPinned(_rig.State.Maps.Single(m => m.CName == $"s0_{map}").Pin);
        return LoadBalancerChainTests.Counters(pinned, slot);
    }

    private string Share(uint[] paths) => string.Join(", ", Enumerable.Range(0, 3).Select(p => $"out{p + 1} {paths.Count(x => x == Out(p)):N0}"));

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void EstablishedFlowsKeepTheirBackendThroughAnAddAndAWeightChangeAsMapWrites(bool v6)
    {
        _v6 = v6;
        var engine = Start(v6, Backend(v6, "a", 0) + Backend(v6, "b", 1));
        uint program = _rig.AttachedProgramId();
        var before = Paths(0);
        output.WriteLine($"before: {Share(before)}");

        var added = Run(engine, "backend", "add", ("name", "c"), ("service", "svc"), ("interface", "out3"), ("via", Via(v6, 2)));
        Assert.Equal((ApplyKind.MapsUpdated, program), (added.Applied, _rig.AttachedProgramId()));
        Assert.Equal(before, Paths(0)); // every established flow stays
        var fresh = Paths(FlowCount);
        output.WriteLine($"after the add, new flows: {Share(fresh)}");
        Assert.InRange(fresh.Count(p => p == Out(2)), FlowCount / 3 - 150, FlowCount / 3 + 150); // new flows take c's share

        var weighted = Run(engine, "backend", "weight", ("name", "a"), ("weight", "4"));
        Assert.Equal((ApplyKind.MapsUpdated, program), (weighted.Applied, _rig.AttachedProgramId()));
        Assert.Equal(before, Paths(0));
        Assert.Equal(fresh, Paths(FlowCount));
        var third = Paths(2 * FlowCount);
        output.WriteLine($"after weights 4:1:1, new flows: {Share(third)}");
        Assert.InRange(third.Count(p => p == Out(0)), FlowCount * 4 / 6 - 150, FlowCount * 4 / 6 + 150);

        // Counters: each flow new once, on the backend it went to; every packet counted where it went.
        var all = before.Concat(fresh).Concat(third).ToArray();
        for (uint slot = 0; slot < 3; slot++)
        {
            var c = Counters("bcount", slot);
            int flows = all.Count(p => p == Out((int)slot));
            output.WriteLine($"backend {"abc"[(int)slot]}: {c.Flows:N0} new flows, {c.Packets:N0} packets, {c.Bytes:N0} bytes");
            Assert.Equal((ulong)flows, c.Flows);
        }
        var listed = engine.RunCommand(new CommandRequest("backend", "list", new Dictionary<string, string>()) { Stats = true });
        Assert.Equal(["a", "b", "c"], listed.Items.Select(i => i["name"]));
        Assert.Equal(Counters("bcount", 2).Packets.ToString(System.Globalization.CultureInfo.InvariantCulture), listed.Items[2]["packets"]);
        // New flows too (contract 2.5: a further field of the counted element), as /metrics has them.
        for (int slot = 0; slot < 3; slot++)
            Assert.Equal(all.Count(p => p == Out(slot)).ToString(System.Globalization.CultureInfo.InvariantCulture), listed.Items[slot]["flows"]);
        var counted = engine.ItemCounts().Single(c => c.Item == "b");
        Assert.Equal([("flows", (ulong)all.Count(p => p == Out(1)))], counted.Fields);
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void ADrainedBackendKeepsItsFlowsAndNewFlowsAvoidItInOneBankFlip(bool v6)
    {
        _v6 = v6;
        var engine = Start(v6, Backend(v6, "a", 0) + Backend(v6, "b", 1) + Backend(v6, "c", 2));
        uint program = _rig.AttachedProgramId();
        var before = Paths(0);
        int onB = before.Count(p => p == Out(1));
        Assert.InRange(onB, FlowCount / 3 - 150, FlowCount / 3 + 150);
        var countedBefore = Counters("bcount", 1);

        var drained = Run(engine, "backend", "drain", ("name", "b"));
        Assert.Equal((ApplyKind.MapsUpdated, program, 1u), (drained.Applied, _rig.AttachedProgramId(), Bank()));
        Assert.Equal(before, Paths(0)); // b's flows too
        var fresh = Paths(FlowCount);
        output.WriteLine($"drained b: its {onB:N0} established flows stayed; new flows: {Share(fresh)}");
        Assert.DoesNotContain(Out(1), fresh);
        var countedAfter = Counters("bcount", 1);
        Assert.Equal((countedBefore.Flows, countedBefore.Packets + (ulong)onB), (countedAfter.Flows, countedAfter.Packets));

        // Back in: b takes new flows again; the table is the one before the drain, so flows it would have had go to it.
        Run(engine, "backend", "undrain", ("name", "b"));
        Assert.Equal(0u, Bank());
        Assert.Contains(Out(1), Paths(2 * FlowCount));
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void ARemovedOrDownBackendsFlowsMoveAndTheOthersStay(bool v6)
    {
        _v6 = v6;
        string backends = Backend(v6, "a", 0) + Backend(v6, "b", 1) + Backend(v6, "c", 2);
        var engine = Start(v6, backends);
        uint program = _rig.AttachedProgramId();
        var before = Paths(0);

        var removed = Run(engine, "backend", "del", ("name", "b"));
        Assert.Equal((ApplyKind.MapsUpdated, program), (removed.Applied, _rig.AttachedProgramId()));
        var after = Paths(0);
        Assert.DoesNotContain(Out(1), after);
        var stayed = Enumerable.Range(0, FlowCount).Where(i => before[i] != Out(1)).ToList();
        Assert.All(stayed, i => Assert.Equal(before[i], after[i]));
        int moved = before.Count(p => p == Out(1));
        output.WriteLine($"removed b: its {moved:N0} flows moved ({Share(after)}); the other {stayed.Count:N0} stayed");
        // A flow that picks again is a new flow of its new backend; c moved up to b's counter slot, which restarted for it.
        int movedToA = Enumerable.Range(0, FlowCount).Count(i => before[i] == Out(1) && after[i] == Out(0));
        Assert.Equal((ulong)(before.Count(p => p == Out(0)) + movedToA), Counters("bcount", 0).Flows);
        Assert.Equal(((ulong)(moved - movedToA), (ulong)after.Count(p => p == Out(2))), (Counters("bcount", 1).Flows, Counters("bcount", 1).Packets));

        // Down (what a health check sets): c's flows move to a, the only one left; up again, c takes new flows.
        var down = Run(engine, "backend", "down", ("name", "c"));
        Assert.Equal((ApplyKind.MapsUpdated, program), (down.Applied, _rig.AttachedProgramId()));
        Assert.All(Paths(0), p => Assert.Equal(Out(0), p));
        Assert.Equal(ApplyKind.MapsUpdated, Run(engine, "backend", "up", ("name", "c")).Applied);
        Assert.All(Paths(0), p => Assert.Equal(Out(0), p)); // established on a now
        Assert.Contains(Out(2), Paths(FlowCount));
    }

    // What the host's prober would report: results enough in a row to make the probe down or up (the engine runs no prober).
    private static void Probe(HostEngine engine, string name, bool up)
    {
        var spec = engine.Probes.Current.Single(p => p.Probe.Name == name);
        for (int i = 0; i < (up ? spec.Probe.SuccessesToUp : spec.Probe.FailuresToDown); i++)
            engine.Probes.Record(spec, up ? ProbeResult.Success : ProbeResult.Failure("timeout after 100 ms"));
        Assert.Equal(up ? ProbeState.Up : ProbeState.Down, engine.Probes.StateOf("p", 0, name));
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void ABackendWhoseProbeIsDownIsDownItsFlowsMoveAndWithEveryProbeDownTheServicePassesCounted(bool v6)
    {
        _v6 = v6;
        string backends = Backend(v6, "a", 0) + Backend(v6, "b", 1) + Backend(v6, "c", 2);
        var engine = Start(v6, backends);
        Assert.Empty(engine.Probes.Current); // no probe settings, no probes
        // The service's probe, for its backends (the engine runs no prober: the test decides each probe's state).
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stage(v6, backends).Replace("      to: ", "      probe: { kind: icmp, interval: 200ms }\n              to: "));
        uint program = _rig.AttachedProgramId();
        Assert.Equal(ApplyKind.Unchanged, engine.Reload(_rig.ConfigPath).Single().Kind); // probes only: the maps are as they were
        Assert.Equal(["a", "b", "c"], engine.Probes.Current.Select(p => p.Probe.Name).Order());
        var before = Paths(0); // every probe Unknown: all three take flows
        Assert.All(Enumerable.Range(0, 3), path => Assert.Contains(Out(path), before));

        // b's probe down: the host applies again (as its prober's trigger does); b's flows move, the others stay.
        Probe(engine, "a", up: true);
        Probe(engine, "b", up: false);
        Assert.Equal(ApplyKind.MapsUpdated, engine.Apply().Single().Kind);
        var after = Paths(0);
        Assert.DoesNotContain(Out(1), after);
        Assert.All(Enumerable.Range(0, FlowCount).Where(i => before[i] != Out(1)), i => Assert.Equal(before[i], after[i]));
        Assert.DoesNotContain(Out(1), Paths(FlowCount));
        output.WriteLine($"b's probe down: its {before.Count(p => p == Out(1)):N0} flows moved ({Share(after)})");

        // Every probe down: established and new flows go to the kernel, counted as the service's.
        Probe(engine, "a", up: false);
        Probe(engine, "c", up: false);
        Assert.Equal(ApplyKind.MapsUpdated, engine.Apply().Single().Kind);
        using (var entry = _rig.LiveEntry())
            for (int i = 0; i < 200; i++)
            {
                var run = entry.TestRun(Flow(v6, i * 20)); // established and new alike
                Assert.Equal((TcxNext, 0u), (run.ReturnValue, run.Cb[RedirectIfindexCb]));
            }
        Assert.Equal(200ul, Counters("scount", 0).Packets);

        // b back up: it takes new flows again; every change was map writes to the same program.
        Probe(engine, "b", up: true);
        Assert.Equal(ApplyKind.MapsUpdated, engine.Apply().Single().Kind);
        Assert.All(Paths(2 * FlowCount, 300), p => Assert.Equal(Out(1), p));
        Assert.Equal(program, _rig.AttachedProgramId());
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void WithEveryBackendDownOrDrainedEstablishedAndNewFlowsReachTheKernelCounted(bool v6)
    {
        _v6 = v6;
        string backends = Backend(v6, "a", 0) + Backend(v6, "b", 1);
        var engine = Start(v6, backends, "          down: [{ name: a }]\n          drain: [{ name: b }]\n");
        uint program = _rig.AttachedProgramId();
        using (var entry = _rig.LiveEntry())
            for (int i = 0; i < 100; i++)
            {
                var run = entry.TestRun(Flow(v6, i));
                Assert.Equal((TcxNext, 0u), (run.ReturnValue, run.Cb[RedirectIfindexCb]));
            }
        var none = Counters("scount", 0);
        output.WriteLine($"no backend: {none.Packets} packets, {none.Bytes} bytes passed to the kernel");
        Assert.Equal(100ul, none.Packets);
        Assert.Equal((0ul, 0ul), (Counters("bcount", 0).Packets, Counters("bcount", 1).Packets));

        // Undrained, b takes every flow; a flow it took stays when it is drained again (drained keeps, down moves).
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stage(v6, backends, "          down: [{ name: a }]\n"));
        Assert.Equal(ApplyKind.MapsUpdated, engine.Reload(_rig.ConfigPath).Single().Kind);
        Assert.All(Paths(0, 100), p => Assert.Equal(Out(1), p));
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stage(v6, backends, "          down: [{ name: a }]\n          drain: [{ name: b }]\n"));
        Assert.Equal(ApplyKind.MapsUpdated, engine.Reload(_rig.ConfigPath).Single().Kind);
        Assert.All(Paths(0, 100), p => Assert.Equal(Out(1), p));
        Assert.Equal(program, _rig.AttachedProgramId());
        Assert.Equal(100ul, Counters("scount", 0).Packets);
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void ServicesSharingAPrefixAreChosenByProtocolAndPortMostSpecificFirst(bool v6)
    {
        _v6 = v6;
        _rig.UsePlugin(Path.Combine(Repo.PluginsDirectory, "LoadBalancer"));
        string to = v6 ? "2001:db8:9::/48" : "192.0.2.0/24", wide = v6 ? "2001:db8::/32" : "192.0.0.0/16";
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, $$"""
                  - plugin: LoadBalancer
                    settings:
                      services:
                        - { name: any, to: "{{to}}", nexthops: [{ interface: out1, via: "{{Via(v6, 0)}}" }] }
                        - { name: web, to: "{{to}}", protocol: tcp, port: 443, nexthops: [{ interface: out2, via: "{{Via(v6, 1)}}" }] }
                        - { name: dns, to: "{{wide}}", port: 53, nexthops: [{ interface: out3, via: "{{Via(v6, 2)}}" }] }
            """);
        Assert.Equal(ApplyKind.Attached, _rig.Engine().Apply().Single().Kind);
        using var entry = _rig.LiveEntry();
        var source = IPAddress.Parse(v6 ? "2001:db8:1::10" : "10.1.1.1");
        var inside = IPAddress.Parse(v6 ? "2001:db8:9::80" : "192.0.2.80");
        var outside = IPAddress.Parse(v6 ? "2001:db8:7::80" : "192.0.7.80");
        uint PathOf(IPAddress to, byte protocol, ushort dport)
        {
            var frame = v6 ? Packets.Ipv6(source, to, protocol, 4000, dport) : CanaryFrames.Ipv4(source, to, protocol, 4000, dport);
            var run = entry.TestRun(frame);
            return run.ReturnValue == TcActRedirect ? run.Cb[RedirectIfindexCb] : 0;
        }

        Assert.Equal(Out(1), PathOf(inside, 6, 443));   // web: the prefix's most specific
        Assert.Equal(Out(0), PathOf(inside, 17, 443));  // not tcp: any
        Assert.Equal(Out(0), PathOf(inside, 17, 53));   // the longer prefix first: any, before dns's /16
        Assert.Equal(Out(2), PathOf(outside, 17, 53));  // only dns covers it
        Assert.Equal(0u, PathOf(outside, 17, 54));      // nothing takes it: on to the kernel
    }

    [KernelFact]
    public void ServicesAreAddedGivenBackendsAndRemovedByVerbsAsMapWrites()
    {
        _v6 = false;
        var engine = Start(false, Backend(false, "a", 0));
        uint program = _rig.AttachedProgramId();
        using var entry = _rig.LiveEntry();
        (int Verdict, uint Ifindex) Send(string to)
        {
            var run = entry.TestRun(CanaryFrames.Ipv4(IPAddress.Parse("10.1.1.1"), IPAddress.Parse(to), 6, 5555, 443));
            return (run.ReturnValue, run.Cb[RedirectIfindexCb]);
        }

        var added = Run(engine, "service", "add", ("name", "s2"), ("to", "198.51.100.0/24"), ("protocol", "tcp"), ("port", "443"));
        Assert.Equal((ApplyKind.MapsUpdated, program), (added.Applied, _rig.AttachedProgramId()));
        Assert.Equal((TcxNext, 0u), Send("198.51.100.7")); // no backend yet: to the kernel, counted
        Assert.Equal(1ul, Counters("scount", 1).Packets);

        var backend = Run(engine, "backend", "add", ("name", "s2-b"), ("service", "s2"), ("interface", "out2"), ("via", Via(false, 1)));
        Assert.Equal((ApplyKind.MapsUpdated, program), (backend.Applied, _rig.AttachedProgramId()));
        Assert.Equal((TcActRedirect, Out(1)), Send("198.51.100.7"));
        Assert.Equal((TcActRedirect, Out(0)), Send("192.0.2.7"));
        Assert.Equal(["svc", "s2"], Run(engine, "service", "list").Items.Select(i => i["name"]));

        // A service its backends still name is not removed: the verb is refused at the backend that names it.
        var refused = Assert.Throws<PluginHost.Config.ConfigException>(() => Run(engine, "service", "del", ("name", "s2")));
        output.WriteLine(refused.Message);
        Assert.Contains(refused.Errors, e => e.ToString().Contains("unknown service 's2'"));
        Assert.Equal(ApplyKind.MapsUpdated, Run(engine, "backend", "del", ("name", "s2-b")).Applied);
        Assert.Equal(ApplyKind.MapsUpdated, Run(engine, "service", "del", ("name", "s2")).Applied);
        Assert.Equal((TcxNext, 0u), Send("198.51.100.7"));
        Assert.Equal(program, _rig.AttachedProgramId());
    }

    [KernelFact]
    public void AResizedFlowTableKeepsItsFlowsAndCanariesLeaveNoFlows()
    {
        _v6 = false;
        string backends = Backend(false, "a", 0) + Backend(false, "b", 1);
        var engine = Start(false, backends);
        Assert.Empty(FlowKeys()); // the canaries ran through empty State maps of their own: no flow recorded
        var before = Paths(0);
        Assert.Equal(FlowCount, FlowKeys().Count);

        // A new size is a new generation: the host carries the flows over (IMapMigration); c is added in the same
        // change, through the reused double-buffered copies, and the canaries (which predict c for one flow) see them.
        _rig.WriteConfig(_net.Namespace.Name, KernelChain.Input, Stage(false, backends + Backend(false, "c", 2), "          flowTableSize: 131072\n"));
        Assert.Equal(ApplyKind.Swapped, engine.Reload(_rig.ConfigPath).Single().Kind);
        Assert.Equal(FlowCount, FlowKeys().Count);
        Assert.Equal(before, Paths(0));
    }

    [KernelTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryFragmentOfADatagramIsOneFlowEntryOnOneBackend(bool v6)
    {
        _v6 = v6;
        Start(v6, Backend(v6, "a", 0) + Backend(v6, "b", 1) + Backend(v6, "c", 2));
        using var entry = _rig.LiveEntry();
        var paths = new HashSet<uint>();
        for (ushort id = 0; id < 100; id++)
        {
            // One datagram from its own source: the first fragment (with ports) and a later one (payload where ports were).
            var source = v6 ? $"2001:db8:1::{id + 1:x}" : $"10.0.1.{id + 1}";
            byte[] first = v6 ? Fragment6(source, 4242, 53, 0, true) : Packets.AsFragment(Packets.Ipv4Udp(source, "192.0.2.80", sport: 4242, dport: 53), true, 0);
            byte[] later = v6 ? Fragment6(source, 7, 7, 16, false) : Packets.AsFragment(Packets.Ipv4Udp(source, "192.0.2.80", sport: 7, dport: 7), false, 128);
            var a = entry.TestRun(first);
            var b = entry.TestRun(later);
            Assert.Equal((TcActRedirect, a.Cb[RedirectIfindexCb]), (b.ReturnValue, b.Cb[RedirectIfindexCb]));
            paths.Add(a.Cb[RedirectIfindexCb]);
        }
        Assert.Equal(100, FlowKeys().Count); // one entry a datagram
        Assert.Equal(3, paths.Count); // datagrams of other sources spread
    }

    // An IPv6 UDP datagram's fragment: a fragment header (id 0x1234) between the IPv6 and UDP headers.
    private static byte[] Fragment6(string source, ushort sport, ushort dport, int offsetBytes, bool moreFragments) =>
        LoadBalancerChainTests.Ipv6Fragment(IPAddress.Parse(source), sport, dport, offsetBytes, moreFragments);

    private List<byte[]> FlowKeys()
    {
        using var flows = BpfMap.OpenPinned(_rig.State.Maps.Single(m => m.CName == "s0_flows").Pin);
        return flows.Keys();
    }

    private uint Bank()
    {
        using var selector = BpfMap.OpenPinned(_rig.State.Maps.Single(m => m.CName == "s0_bank").Pin);
        var value = new byte[4];
        Assert.True(selector.TryLookup(BitConverter.GetBytes(0u), value));
        return BitConverter.ToUInt32(value);
    }
}
