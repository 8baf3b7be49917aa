using PluginHost.Tests.Support;
using PluginHost.Contract;
using Xunit;

namespace PluginHost.Tests.Plugins.FiveTuplePolicy;

/// <summary>Settings validation of FiveTuplePolicy: rules become template constants; every refusal names its field and value.</summary>
[Trait("Category", "Unit")]
public sealed class FiveTuplePolicySettingsTests(FiveTuplePolicyFixture fixture) : IClassFixture<FiveTuplePolicyFixture>
{
    private const string Rule0 = "pipelines[0].stages[0].settings.rules[0]";

    private readonly IRoutingPlugin _plugin = fixture.Plugin;
    private readonly FakeStageContext _context = FakeStageContext.Default();

    private StageSetup Configure(string settingsYaml) => _plugin.Configure(PluginFixture.Settings("FiveTuplePolicy", settingsYaml), _context);

    [Fact]
    public void RulesBecomeConstantsInOrder()
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
        var c = setup.Constants;
        Assert.Equal(2, c["rules"]);
        Assert.Equal((6, 0xC6120100L, 0xFFFFFF00L, 0L, 1L, 443L, 443L, 1L, 8L, 0xC6120302L),
            (c["r0_proto"], c["r0_src"], c["r0_src_mask"], c["r0_dst_mask"], c["r0_ports"], c["r0_dport_lo"], c["r0_dport_hi"], c["r0_action"], c["r0_ifindex"], c["r0_via"]));
        Assert.Equal((17, 1024L, 65535L, 0L, 65535L, 2L), (c["r1_proto"], c["r1_sport_lo"], c["r1_sport_hi"], c["r1_dport_lo"], c["r1_dport_hi"], c["r1_action"]));
        // Canaries: the web rule's packet is redirected to up2; the UDP rule's packet (40000 → 9... from port 1024) is dropped.
        Assert.Equal([(CanaryVerdict.Redirect, 8), (CanaryVerdict.Drop, 0)], setup.Canaries.Select(k => (k.Expect, k.RedirectIfindex)));
    }

    [Theory]
    [InlineData("dport: 443\n  action: pass", "dport", "ports need 'protocol: tcp' or 'protocol: udp'")]
    [InlineData("protocol: tcp\n  dport: 2000-1000\n  action: pass", "dport", "invalid port '2000-1000'")]
    [InlineData("protocol: tcp\n  dport: 70000\n  action: pass", "dport", "invalid port '70000'")]
    [InlineData("protocol: bogus\n  action: pass", "protocol", "invalid protocol 'bogus'")]
    [InlineData("from: 198.18.1.1/24\n  action: pass", "from", "host bits are set (did you mean 198.18.1.0/24?)")]
    [InlineData("action: drop\n  interface: up1", "interface", "'interface' applies only to 'action: redirect'")]
    [InlineData("action: teleport", "action", "invalid action 'teleport'")]
    [InlineData("action: \"drop, pass\"", "action", "invalid action 'drop, pass'")]
    [InlineData("action: redirect", "interface", "missing output interface")]
    [InlineData("name: \"a b\"\n  action: pass", "name", "invalid name 'a b'")]
    public void BadRulesAreRefusedAtTheirField(string rule, string field, string message)
    {
        var setup = Configure("rules:\n  - " + rule.Replace("\n", "\n  "));

        Assert.Equal(0, setup.Constants["rules"]);
        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal($"{Rule0}.{field}", node.Path);
        Assert.Contains(message, error);
    }

    [Fact]
    public void ARuleWithNothingToDoAndTooManyRulesAreRefused()
    {
        Configure("rules:\n  - protocol: tcp");
        Assert.Contains("missing 'action'", Assert.Single(_context.Errors).Message);

        _context.Errors.Clear();
        var setup = Configure("rules:\n" + string.Concat(Enumerable.Range(0, 65).Select(i => $"  - name: r{i}\n    action: pass\n")));
        Assert.Contains("65 rules: at most 64 per stage", Assert.Single(_context.Errors).Message);
        Assert.Equal(64, setup.Constants["rules"]);
    }

    [Fact]
    public void DuplicateNamesAreRefused()
    {
        Configure("rules:\n  - name: x\n    action: pass\n  - name: x\n    action: drop");

        var (node, error) = Assert.Single(_context.Errors);
        Assert.Equal("pipelines[0].stages[0].settings.rules[1].name", node.Path);
        Assert.Contains("duplicate rule name 'x' (first given at pipelines[0].stages[0].settings.rules[0].name)", error);
    }
}
