using PluginHost.Tests.Support;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Plugins.FiveTuplePolicy;

/// <summary>Settings and rules files of FiveTuplePolicy: rules become the classifier's tables; every refusal names its field and value.</summary>
[Trait("Category", "Unit")]
public sealed class FiveTuplePolicySettingsTests(FiveTuplePolicyFixture fixture) : IClassFixture<FiveTuplePolicyFixture>, IDisposable
{
    private const string Rule0 = "pipelines[0].stages[0].settings.rules[0]";

    private readonly IRoutingPlugin _plugin = fixture.Plugin;
    private readonly FakeStageContext _context = FakeStageContext.Default();
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-ftp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private StageSetup Configure(string settingsYaml) => _plugin.Configure(PluginFixture.Settings("FiveTuplePolicy", settingsYaml), _context);

    // A map's rows over every table the setup gives for it (the file's part, then the settings'), with their field names.
    private static List<Dictionary<string, ulong>> Rows(StageSetup setup, string map) =>
        setup.Tables.Where(t => t.Map == map).SelectMany(t => Enumerable.Range(0, t.Count).Select(i =>
        {
            var row = t.Row(i).ToArray();
            return t.KeyFields.Concat(t.ValueFields).Select((f, j) => (f, row[j])).ToDictionary(p => p.f, p => p.Item2);
        })).ToList();

    private static Dictionary<string, ulong> RuleRow(StageSetup setup, int index) => Rows(setup, "rules")[index];

    [Fact]
    public void RulesBecomeTheClassifiersTablesInOrder()
    {
        var setup = Configure("""
            rules:
              - protocol: tcp
                from: 198.18.1.0/24
                dport: 443
                interface: up2
                via: 198.18.3.2
              - protocol: udp
                sport: 1024-65535
                action: drop
            """);

        Assert.Empty(_context.Errors);
        Assert.Empty(setup.Entries);
        Assert.Equal(2, Rows(setup, "rules").Count);
        var web = RuleRow(setup, 0);
        Assert.Equal((6ul, 6ul, 0xC6120100ul, 0xFFFFFF00ul, 0ul, 1ul, 443ul, 443ul, 1ul, 8ul, 0xC6120302ul),
            (web["proto_lo"], web["proto_hi"], web["src_lo"], web["smask_lo"], web["dmask_lo"], web["ports"], web["dport_lo"], web["dport_hi"],
             web["action"], web["ifindex"], web["via4"]));
        var udp = RuleRow(setup, 1);
        Assert.Equal((17ul, 1024ul, 65535ul, 0ul, 65535ul, 2ul), (udp["proto_lo"], udp["sport_lo"], udp["sport_hi"], udp["dport_lo"], udp["dport_hi"], udp["action"]));
        // Two IPv4 rules: a tree under node 0, an empty IPv6 leaf at node 1; every map sized to the smallest step.
        Assert.True(Rows(setup, "nodes").Count >= 2);
        Assert.All(setup.MapSizes.Values, size => Assert.Equal(64u, size));
        Assert.Equal(new long[] { 64, 16 }, new[] { setup.Constants["max_depth"], setup.Constants["leaf_max"] });
        // Canaries: the web rule's packet is redirected to up2; the UDP rule's packet (from port 1024) is dropped.
        Assert.Equal([(CanaryVerdict.Redirect, 8), (CanaryVerdict.Drop, 0)], setup.Canaries.Select(k => (k.Expect, k.RedirectIfindex)));
        Assert.StartsWith("2 rules in settings, 0 in the rules file (0 IPv6); trees of", setup.Summary);
    }

    [Fact]
    public void IPv6RulesHaveTheirOwnFamilyAndNextHop()
    {
        var setup = Configure("""
            rules:
              - protocol: udp
                from: 2001:db8:1::/48
                dport: 53
                interface: up1
                via: fe80::2
              - to: 2001:db8::/32
                action: next
            """);

        Assert.Empty(_context.Errors);
        var dns = RuleRow(setup, 0);
        Assert.Equal((0x20010db800010000ul, 0xffffffffffff0000ul, 0xfe80000000000000ul, 2ul, 0ul, 7ul),
            (dns["src_hi"], dns["smask_hi"], dns["via6.hi"], dns["via6.lo"], dns["via4"], dns["ifindex"]));
        Assert.Equal(4ul, RuleRow(setup, 1)["action"]);
        Assert.StartsWith("2 rules in settings, 0 in the rules file (2 IPv6)", setup.Summary);
    }

    [Theory]
    [InlineData("dport: 443\n  action: pass", "dport", "ports need 'protocol: tcp', 'udp' or 'sctp'")]
    [InlineData("protocol: tcp\n  dport: 2000-1000\n  action: pass", "dport", "invalid port '2000-1000'")]
    [InlineData("protocol: tcp\n  dport: 70000\n  action: pass", "dport", "invalid port '70000'")]
    [InlineData("protocol: bogus\n  action: pass", "protocol", "invalid protocol 'bogus'")]
    [InlineData("from: 198.18.1.1/24\n  action: pass", "from", "host bits are set (did you mean 198.18.1.0/24?)")]
    [InlineData("from: 198.18.1.0/24\n  to: 2001:db8::/32\n  action: pass", "to", "'to' is IPv6 but 'from' is IPv4: a rule is one family")]
    [InlineData("from: 2001:db8::/32\n  interface: up1\n  via: 198.18.3.2", "via", "(the rule is IPv6)")]
    [InlineData("action: drop\n  interface: up1", "interface", "'interface' applies only to 'action: redirect'")]
    [InlineData("action: teleport", "action", "invalid action 'teleport'")]
    [InlineData("action: \"drop, pass\"", "action", "invalid action 'drop, pass'")]
    [InlineData("action: redirect", "interface", "missing output interface")]
    [InlineData("name: \"a b\"\n  action: pass", "name", "invalid name 'a b'")]
    public void BadRulesAreRefusedAtTheirField(string rule, string field, string message)
    {
        Configure("rules:\n  - " + rule.Replace("\n", "\n  "));

        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal($"{Rule0}.{field}", node.Path);
        Assert.Contains(message, error);
    }

    [Fact]
    public void ARuleWithNothingToDoIsRefused()
    {
        Configure("rules:\n  - protocol: tcp");
        Assert.Contains("missing 'action'", Assert.Single(_context.Errors).Message);
    }

    [Fact]
    public void DuplicateNamesAreRefused()
    {
        Configure("rules:\n  - name: x\n    action: pass\n  - name: x\n    action: drop");

        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal("pipelines[0].stages[0].settings.rules[1].name", node.Path);
        Assert.Contains("duplicate rule name 'x' (first given at pipelines[0].stages[0].settings.rules[0].name)", error);
    }

    [Fact]
    public void ARulesFileFollowsTheSettingsRulesWithItsActions()
    {
        string file = Path.Combine(_dir, "acl.rules");
        File.WriteAllText(file, """
            # ClassBench lines, with an action or the default
            0 6 198.18.1.0/24 0.0.0.0/0 0-65535 22-22 drop
            1 17 0.0.0.0/0 192.0.2.0/24 0-65535 53-53 redirect up1 198.18.2.2

            2 any 2001:db8::/32 ::/0 0-65535 0-65535
            """);

        var setup = Configure($"rules:\n  - name: first\n    action: pass\n    from: 10.0.0.1\nrulesFile: {file}\ndefaultAction: drop");

        Assert.Empty(_context.Errors);
        // The rules array holds the settings' rules from 0 and the file's from 1,024: neither moves when the other changes.
        // Given as the file's part, then the settings'.
        Assert.Equal(new ulong[] { 1024, 1025, 1026, 0 }, Rows(setup, "rules").Select(r => r["index"]));
        Assert.Equal((2ul, 1ul, 2ul, 3ul), (RuleRow(setup, 0)["action"], RuleRow(setup, 1)["action"], RuleRow(setup, 2)["action"], RuleRow(setup, 3)["action"]));
        Assert.Equal((7ul, 0xC6120202ul), (RuleRow(setup, 1)["ifindex"], RuleRow(setup, 1)["via4"]));
        Assert.Equal(0x20010db800000000ul, RuleRow(setup, 2)["src_hi"]);
        Assert.Equal(2048u, setup.MapSizes["rules"]); // 1,027 positions, with room to grow
        Assert.StartsWith("1 rule in settings, 3 in the rules file (1 IPv6)", setup.Summary);
    }

    [Fact]
    public void EveryBadLineOfARulesFileIsReportedWithItsNumberAndValueAndNothingApplies()
    {
        string file = Path.Combine(_dir, "bad.rules");
        File.WriteAllText(file, """
            0 6 198.18.1.0/24 0.0.0.0/0 0-65535 22-22 drop
            1 6 198.18.1.1/24 0.0.0.0/0 0-65535 22-22
            2 6 198.18.1.0/24 0.0.0.0/0 0-65535 22-22 teleport
            3 6 198.18.1.0/24 0.0.0.0/0 0-65535 99999-1 drop
            4 6 198.18.1.0/24 0.0.0.0/0 0-65535 22-22 redirect nosuch0
            5 6 198.18.1.0/24 0.0.0.0/0 0-65535 22-22 redirect up1 224.0.0.1
            """);

        var setup = Configure($"rulesFile: {file}");

        var messages = _context.Errors.Select(e => e.Message).ToList();
        Assert.Equal(5, messages.Count);
        Assert.All(_context.Errors, e => Assert.Equal("pipelines[0].stages[0].settings.rulesFile", e.Node.Path));
        Assert.Contains($"rules file '{file}': line 2: invalid source prefix '198.18.1.1/24': host bits are set (did you mean 198.18.1.0/24?)", messages);
        Assert.Contains($"rules file '{file}': line 3: invalid action 'teleport'", messages[1]);
        Assert.Contains($"rules file '{file}': line 4: invalid destination port range '99999-1'", messages[2]);
        Assert.Contains($"rules file '{file}': line 5: no interface named 'nosuch0'", messages[3]);
        Assert.Contains($"rules file '{file}': line 6: invalid next hop '224.0.0.1'", messages[4]);
        Assert.Empty(Rows(setup, "rules"));
    }

    [Fact]
    public void ARulesFileOutsideTheAllowedDirectoriesOrAFifoIsRefused()
    {
        Configure("rulesFile: /nonexistent/acl.rules");
        Assert.Contains("rules file '/nonexistent/acl.rules' does not exist", Assert.Single(_context.Errors).Message);
    }

    [Fact]
    public void ARuleThatCanNeverMatchIsAWarningNamingTheRuleBeforeIt()
    {
        var setup = Configure("""
            rules:
              - name: all-web
                protocol: tcp
                dport: 80-443
                action: drop
              - name: some-web
                protocol: tcp
                from: 198.18.1.0/24
                dport: 443
                action: pass
              - name: dns
                protocol: udp
                dport: 53
                action: pass
            """);

        Assert.Empty(_context.Errors);
        var (node, warning) = Assert.Single(_context.Warnings);
        Assert.Equal("rule 'some-web' can never match: rule 'all-web' before it matches every packet it would", warning);
        Assert.Equal(3, Rows(setup, "rules").Count); // a warning, not a refusal
    }
}
