using PluginHost.Tests.Support;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>Settings validation of LoadBalancer, and the slot table its weights become.</summary>
[Trait("Category", "Unit")]
public sealed class LoadBalancerSettingsTests(LoadBalancerFixture fixture) : IClassFixture<LoadBalancerFixture>
{
    private const string Service0 = "pipelines[0].stages[0].settings.services[0]";

    private const int LoadBalancerDefaultTableSize = 4093;

    private readonly IRoutingPlugin _plugin = fixture.Plugin;
    private readonly FakeStageContext _context = FakeStageContext.Default();

    private StageSetup Configure(string settingsYaml) => _plugin.Configure(PluginFixture.Settings("LoadBalancer", settingsYaml), _context);

    [Fact]
    public void WeightsBecomeTheirShareOfAMaglevTable()
    {
        var setup = Configure("""
            services:
              - to: 198.18.9.0/24
                nexthops:
                  - interface: up1
                    weight: 3
                  - interface: up2
            """);

        Assert.Empty(_context.Errors);
        var ring = Assert.Single(setup.Tables, t => t.Map == "ring");
        Assert.Equal(LoadBalancerDefaultTableSize, ring.Count);
        // Ring entries name backends by id; the backends map gives each id its path.
        var backends = Rows(setup, "backends");
        Assert.Equal([7UL, 8UL], backends.Select(b => b[3]));
        ulong up1 = backends[0][0], up2 = backends[1][0];
        Assert.NotEqual(0UL, up1);
        var entries = Enumerable.Range(0, ring.Count).Select(i => ring.Row(i)[1]).ToList();
        Assert.InRange(entries.Count(b => b == up1), 3060, 3080); // 3/4 of 4,093 = 3,069.75
        Assert.Equal(ring.Count, entries.Count(b => b == up1 || b == up2));
        Assert.Equal([24UL, 0xC6120900UL, 0UL, 1UL], Rows(setup, "services").Single()); // its list: one service from 0
        var service = Rows(setup, "svclist").Single();
        Assert.Equal((0UL, 4093UL, 0UL), (service[1], service[2], service[4])); // base, size, counter slot
        Assert.Equal(16384u, setup.MapSizes["ring"]); // room for four default tables
        Assert.Equal(65536u, setup.MapSizes["flows"]);
        Assert.Equal(2, setup.Canaries.Count);
        Assert.Contains("1 service (0 IPv6), 2 backends", setup.Summary);
        Assert.Contains("flow table: 65,536 flows (6.0 MiB)", setup.Summary);
        Assert.Equal(["up1", "up2", "198.18.9.0/24"], setup.ItemCounters.Select(c => c.Item));
    }

    private static List<ulong[]> Rows(StageSetup setup, string map)
    {
        var table = setup.Tables.Single(t => t.Map == map);
        return Enumerable.Range(0, table.Count).Select(i => table.Row(i).ToArray()).ToList();
    }

    [Fact]
    public void AnIpv6ServiceIsAccepted()
    {
        var setup = Configure("""
            services:
              - to: 2001:db8:9::/48
                tableSize: 1021
                nexthops:
                  - interface: up1
                    via: fe80::2
                  - interface: up2
                    via: 2001:db8:3::2
                    weight: 0
            """);

        Assert.Empty(_context.Errors);
        Assert.Equal([48UL, 0x20010db800090000UL, 0UL, 0UL, 1UL], Rows(setup, "services6").Single());
        Assert.Equal(1021UL, Rows(setup, "svclist").Single()[2]);
        ulong up1 = Rows(setup, "backends")[0][0];
        Assert.All(Rows(setup, "ring"), entry => Assert.Equal(up1, entry[1])); // up2 is drained
        Assert.Equal([0UL, 1UL], Rows(setup, "backends").Select(b => b[7])); // state: up, drained
        Assert.Equal(0, setup.Tables.Single(t => t.Map == "services").Count);
        Assert.Equal(2, setup.Canaries.Count);
    }

    [Fact]
    public void ServicesOfAPrefixAreTriedMostSpecificFirstThenThoseOfCoveringPrefixes()
    {
        var setup = Configure("""
            services:
              - { name: any, to: 198.18.9.0/24 }
              - { name: web, to: 198.18.9.0/24, protocol: tcp, port: 443 }
              - { name: dns, to: 198.18.0.0/16, port: 53 }
              - { name: udp, to: 198.18.9.0/24, protocol: udp }
              - { name: half, to: 198.18.9.128/25, protocol: 6 }
            """);

        Assert.Empty(_context.Errors);
        var ids = new[] { "any", "web", "dns", "udp", "half" }.ToDictionary(n => (ulong)Identity("service\n" + n), n => n);
        var list = Rows(setup, "svclist").Select(r => ids[r[3]]).ToList();
        // Per prefix (in settings order of their first service): /24, /16, /25.
        Assert.Equal([(24UL, 0UL, 4UL), (16UL, 4UL, 1UL), (25UL, 5UL, 5UL)], Rows(setup, "services").Select(r => (r[0], r[2], r[3])));
        Assert.Equal(["web", "udp", "any", "dns", "dns", "half", "web", "udp", "any", "dns"], list);
        var web = Rows(setup, "svclist")[0];
        Assert.Equal((443UL, 6UL, 6UL), (web[5], web[6], web[7])); // port, protocol, flags: protocol and port
        Assert.Equal(0, setup.Tables.Single(t => t.Map == "ring").Count); // no backends yet: no tables
        Assert.Equal(0, setup.Canaries.Count(c => c.Expect == CanaryVerdict.Redirect));
    }

    // The plugin's identity hash (Model.cs, Identity.Of): FNV-1a, never 0.
    private static uint Identity(string text)
    {
        uint hash = 2166136261;
        foreach (char c in text)
            hash = (hash ^ c) * 16777619;
        return hash == 0 ? 1 : hash;
    }

    [Fact]
    public void BackendsListedApartJoinTheirServiceAndWeightsDrainAndDownChangeThemByName()
    {
        var setup = Configure("""
            services:
              - name: web
                to: 198.18.9.0/24
                nexthops:
                  - interface: up1
                    via: 198.18.2.2
            backends:
              - { name: b, service: web, interface: up2, via: 198.18.3.2 }
              - { name: c, service: web, interface: up2, via: 198.18.3.3, weight: 5 }
              - { name: d, service: web, interface: up2, via: 198.18.3.4 }
            weights: [{ name: c, weight: 0 }, { name: b, weight: 7 }]
            drain: [{ name: up1@198.18.2.2 }, { name: gone }]
            down: [{ name: d }]
            """);

        Assert.Empty(_context.Errors);
        var (node, warning) = Assert.Single(_context.Warnings);
        Assert.Equal("pipelines[0].stages[0].settings.drain[1].name", node.Path);
        Assert.Equal("drain: no backend named 'gone' (ignored)", warning);
        var backends = Rows(setup, "backends");
        Assert.Equal([1UL, 0UL, 1UL, 2UL], backends.Select(b => b[7])); // drained, up, drained (weight 0), down
        Assert.Equal([0UL, 1UL, 2UL, 3UL], backends.Select(b => b[6])); // counter slots
        ulong b = backends[1][0];
        Assert.All(Rows(setup, "ring"), entry => Assert.Equal(b, entry[1])); // only b is up
        Assert.Equal(["up1@198.18.2.2", "b", "c", "d", "web"], setup.ItemCounters.Select(c => c.Item));
        Assert.Contains("4 backends (2 drained, 1 down or withdrawn)", setup.Summary);
    }

    [Fact]
    public void ProbesAreDeclaredPerBackendAndADownProbeTakesItsBackendDownAsTheDownListWould()
    {
        const string yaml = """
            services:
              - name: web
                to: 198.18.9.0/24
                probe: { kind: tcp, port: 8080, interval: 200ms, failures: 4, successes: 1 }
                nexthops:
                  - interface: up1
                    via: 198.18.2.2
                  - name: b
                    interface: up2
                    via: 198.18.3.2
                    probe: icmp
                  - name: c
                    interface: up2
                    via: 198.18.3.3
                    probe: none
            backends:
              - name: d
                service: web
                interface: up2
                via: 198.18.3.4
                probe: tcp/81
            """;
        var setup = Configure(yaml);

        Assert.Empty(_context.Errors);
        Assert.Equal(
        [
            new Probe("up1/198.18.2.2", "up1", System.Net.IPAddress.Parse("198.18.2.2"), ProbeKind.Tcp)
                { Port = 8080, Interval = TimeSpan.FromMilliseconds(200), Timeout = TimeSpan.FromMilliseconds(100), FailuresToDown = 4, SuccessesToUp = 1 },
            new Probe("b", "up2", System.Net.IPAddress.Parse("198.18.3.2"), ProbeKind.Icmp), // the host's defaults: 1 s, 500 ms, 3, 2
            new Probe("d", "up2", System.Net.IPAddress.Parse("198.18.3.4"), ProbeKind.Tcp) { Port = 81 },
        ], setup.Probes);
        Assert.Equal([0UL, 0UL, 0UL, 0UL], Rows(setup, "backends").Select(b => b[7])); // Unknown counts as up
        Assert.Contains("3 probed, 0 down by probe", setup.Summary);

        // The host says b's probe and up1's are down (Up and Unknown count alike): both are down, with 'down' listed or not.
        _context.Probes["b"] = ProbeState.Down;
        _context.Probes["up1/198.18.2.2"] = ProbeState.Down;
        _context.Probes["d"] = ProbeState.Up;
        var probed = Configure(yaml);
        var listed = _plugin.Configure(PluginFixture.Settings("LoadBalancer", yaml + "\ndown: [{ name: b }, { name: up1@198.18.2.2 }]"), FakeStageContext.Default());
        Assert.Equal([2UL, 2UL, 0UL, 0UL], Rows(probed, "backends").Select(b => b[7]));
        Assert.Equal(Rows(listed, "backends"), Rows(probed, "backends"));
        Assert.Equal(Rows(listed, "ring"), Rows(probed, "ring"));
        Assert.Contains("2 down or withdrawn; 3 probed, 2 down by probe", probed.Summary);

        // c is not probed (a state under its name means nothing); with every other probe down, c takes every entry.
        _context.Probes["d"] = ProbeState.Down;
        _context.Probes["c"] = ProbeState.Down;
        var rest = Configure(yaml);
        ulong c = Rows(rest, "backends")[2][0];
        Assert.All(Rows(rest, "ring"), entry => Assert.Equal(c, entry[1]));
        // Every backend's probe down: no entry left, so the service's packets go to the kernel (and its canaries say so).
        var none = Configure(yaml.Replace("probe: none", "probe: icmp"));
        Assert.All(Rows(none, "ring"), entry => Assert.Equal(0UL, entry[1]));
        Assert.All(none.Canaries, canary => Assert.Equal(CanaryVerdict.Pass, canary.Expect));
    }

    [Fact]
    public void AnIdentityNamesServiceNameAndPathButNotWeightOrState()
    {
        ulong Id(string backend) => Rows(Configure($"services:\n  - name: web\n    to: 198.18.9.0/24\nbackends:\n  - {backend}"), "backends")[0][0];

        ulong first = Id("{ name: b, service: web, interface: up2, via: 198.18.3.2 }");
        Assert.Equal(first, Id("{ name: b, service: web, interface: up2, via: 198.18.3.2, weight: 9 }"));
        Assert.NotEqual(first, Id("{ name: b, service: web, interface: up2, via: 198.18.3.3 }"));
        Assert.NotEqual(first, Id("{ name: b2, service: web, interface: up2, via: 198.18.3.2 }"));
    }

    [Theory]
    [InlineData("backends: [{ name: b, service: nope, interface: up1 }]", "backends[0].service", "unknown service 'nope' (services: web)")]
    [InlineData("backends: [{ service: web, interface: up1 }]", "backends[0].name", "missing backend name")]
    [InlineData("backends: [{ name: up1, service: web, interface: up2 }]", "backends[0].name", "duplicate backend name 'up1' (first given at pipelines[0].stages[0].settings.services[0].nexthops[0])")]
    [InlineData("backends: [{ name: web, service: web, interface: up2 }]", "backends[0].name", "backend name 'web' is a service's name")]
    [InlineData("backends: [{ name: b, service: web, interface: up1, via: 2001:db8::1 }]", "backends[0].via", "is IPv6 but the service is IPv4")]
    [InlineData("weights: [{ name: up1, weight: 1001 }]", "weights[0].weight", "invalid weight '1001'")]
    [InlineData("flowTableSize: 100", "flowTableSize", "invalid flow table size '100': expected a whole number from 1,024 to 16,777,216")]
    public void BadStageSettingsAreRefusedAtTheirField(string yaml, string field, string message)
    {
        var setup = Configure("services:\n  - name: web\n    to: 198.18.9.0/24\n    nexthops:\n      - interface: up1\n" + yaml);

        Assert.Empty(setup.Tables.SelectMany(t => Enumerable.Range(0, t.Count)));
        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal($"pipelines[0].stages[0].settings.{field}", node.Path);
        Assert.Contains(message, error);
    }

    [Theory]
    [InlineData("probe: udp", "probe", "invalid probe 'udp': expected icmp, tcp/PORT, none, or a mapping")]
    [InlineData("probe: tcp/0", "probe", "invalid probe 'tcp/0'")]
    [InlineData("probe: { port: 80 }", "probe.kind", "missing probe kind: expected icmp or tcp")]
    [InlineData("probe: { kind: http }", "probe.kind", "invalid probe kind 'http': expected icmp (echo) or tcp")]
    [InlineData("probe: { kind: tcp }", "probe.port", "missing probe port: a tcp probe connects to a port")]
    [InlineData("probe: { kind: tcp, port: 70000 }", "probe.port", "invalid probe port '70000': expected 1 to 65535")]
    [InlineData("probe: { kind: icmp, port: 80 }", "probe.port", "invalid probe port '80': an icmp probe has no port")]
    [InlineData("probe: { kind: icmp, interval: 50ms }", "probe.interval", "invalid probe interval '50ms': expected a duration from 100ms to 1h, such as 200ms or 2s")]
    [InlineData("probe: { kind: icmp, interval: 200 }", "probe.interval", "invalid probe interval '200'")]
    [InlineData("probe: { kind: icmp, interval: 200ms, timeout: 200ms }", "probe.timeout", "invalid probe timeout '200ms': expected less than the interval (200ms)")]
    [InlineData("probe: { kind: icmp, timeout: 5ms }", "probe.timeout", "invalid probe timeout '5ms': expected a duration from 10ms to 1h")]
    [InlineData("probe: { kind: icmp, failures: 0 }", "probe.failures", "invalid probe failures '0': expected a whole number from 1 to 100")]
    [InlineData("probe: { kind: icmp, successes: 101 }", "probe.successes", "invalid probe successes '101'")]
    [InlineData("probe: { kind: icmp, every: 1s }", "probe.every", "every")]
    public void BadProbeSettingsAreRefusedAtTheirFieldAndNothingIsApplied(string probe, string field, string message)
    {
        // The same probe refused as a service's default and as a backend's own.
        foreach (var (yaml, at) in new[]
                 {
                     ($"services:\n  - name: web\n    to: 198.18.9.0/24\n    {probe}\n    nexthops:\n      - {{ interface: up1, via: 198.18.2.2 }}", "services[0]"),
                     ($"services:\n  - name: web\n    to: 198.18.9.0/24\nbackends:\n  - name: b\n    service: web\n    interface: up1\n    via: 198.18.2.2\n    {probe}", "backends[0]"),
                 })
        {
            var context = FakeStageContext.Default();
            var setup = _plugin.Configure(PluginFixture.Settings("LoadBalancer", yaml), context);

            Assert.Empty(setup.Tables.SelectMany(t => Enumerable.Range(0, t.Count)));
            Assert.Empty(setup.Probes);
            var (node, error) = Assert.Single(context.Errors);
            Assert.Equal($"pipelines[0].stages[0].settings.{at}.{field}", node.Path);
            Assert.Contains(message, error);
        }
    }

    [Theory]
    [InlineData("services:\n  - name: web\n    to: 198.18.9.0/24\n    probe: icmp\n    nexthops:\n      - interface: up1", "services[0].nexthops[0]",
        "probe of backend 'up1': no next hop to probe (give the backend 'via', or 'probe: none')")]
    [InlineData("services:\n  - name: web\n    to: 198.18.9.0/24\n    nexthops:\n      - interface: up1\n        probe: tcp/80", "services[0].nexthops[0].probe",
        "probe of backend 'up1': no next hop to probe")]
    [InlineData("services:\n  - name: web\n    to: 198.18.9.0/24\n    probe: icmp\n    nexthops:\n      - { interface: up1, via: 198.18.2.2 }\n      - { name: up1/198.18.2.2, interface: up2, via: 198.18.3.2 }",
        "services[0].nexthops[1]", "probe of backend 'up1/198.18.2.2': named 'up1/198.18.2.2' as that of backend 'up1@198.18.2.2'")]
    public void AProbeThatCannotWorkIsRefusedAtItsBackend(string yaml, string field, string message)
    {
        var setup = Configure(yaml);

        Assert.Empty(setup.Probes);
        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal($"pipelines[0].stages[0].settings.{field}", node.Path);
        Assert.Contains(message, error);
    }

    [Fact]
    public void TheFlowTableIsSizedBySettingsAndReported()
    {
        var setup = Configure("flowTableSize: 1048576\nservices:\n  - to: 2001:db8:9::/48\n    tableSize: 65537\n    nexthops:\n      - interface: up1\n        via: fe80::2");

        Assert.Empty(_context.Errors);
        Assert.Equal(1048576u, setup.MapSizes["flows"]);
        Assert.Contains("Maglev tables: 1 of 65,537 entries; flow table: 1,048,576 flows (96.0 MiB)", setup.Summary);
    }

    [Fact]
    public void ABackendWhoseWeightEarnsNoEntryIsWarnedAbout()
    {
        var hops = string.Join("", Enumerable.Range(0, 15).Select(i => $"\n      - interface: up1\n        via: 198.18.2.{i + 2}\n        weight: 1000"));
        Configure("services:\n  - to: 198.18.9.0/24\n    tableSize: 1031\n    nexthops:\n      - interface: up2\n        via: 198.18.3.2\n        weight: 1" + hops);

        Assert.Empty(_context.Errors);
        var (node, warning) = Assert.Single(_context.Warnings);
        Assert.Equal($"{Service0}.nexthops[0]", node.Path);
        Assert.Contains("gets no entry", warning);
    }

    [Theory]
    [InlineData("to: 198.18.9.1/24", "to", "host bits are set (did you mean 198.18.9.0/24?)")]
    [InlineData("to: 198.18.9.0/24\n  hash: random", "hash", "invalid hash 'random'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      weight: 1001", "nexthops[0].weight", "invalid weight '1001'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      weight: -1", "nexthops[0].weight", "invalid weight '-1'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      via: 2001:db8::2", "nexthops[0].via", "is IPv6 but the service is IPv4")]
    [InlineData("to: 2001:db8:9::/48\n  nexthops:\n    - interface: up1\n      via: fe80::2\n    - interface: up2\n      via: 198.18.3.2", "nexthops[1].via", "is IPv4 but the service is IPv6")]
    [InlineData("to: fe80::/64", "to", "never forwarded")]
    [InlineData("to: 198.18.9.0/24\n  tableSize: 4096\n  nexthops:\n    - interface: up1", "tableSize", "invalid table size '4096'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n      via: 224.0.0.1", "nexthops[0].via", "invalid next hop '224.0.0.1'")]
    [InlineData("to: 198.18.9.0/24\n  nexthops:\n    - interface: up1\n    - interface: up1", "nexthops[1]", "duplicate next hop")]
    [InlineData("to: 198.18.9.0/24\n  nexthops: up1", "nexthops", "expected a list of next hops")]
    [InlineData("to: 198.18.9.0/24\n  protocol: tcpp", "protocol", "invalid protocol 'tcpp': expected tcp, udp, sctp or a number 0-255")]
    [InlineData("to: 198.18.9.0/24\n  protocol: 1\n  port: 53", "port", "a port needs protocol tcp, udp or sctp (or none), not icmp")]
    [InlineData("to: 198.18.9.0/24\n  port: 65536", "port", "invalid port '65536'")]
    [InlineData("to: 198.18.9.0/24\n  name: a b", "name", "invalid service name 'a b'")]
    public void BadServicesAreRefusedAtTheirField(string service, string field, string message)
    {
        string yaml = "services:\n  - " + service.Replace("\n", "\n  ");
        if (!service.Contains("nexthops"))
            yaml += "\n    nexthops:\n      - interface: up1";
        var setup = Configure(yaml);

        Assert.Empty(setup.Tables.SelectMany(t => Enumerable.Range(0, t.Count))); // the plugin writes tables, not entries
        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal($"{Service0}.{field}", node.Path);
        Assert.Contains(message, error);
    }
}
