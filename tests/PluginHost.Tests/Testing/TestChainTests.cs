using PluginHost.Testing;
using PluginHost.Tests.Support;
using PluginHost.TestSupport;
using Xunit;

namespace PluginHost.Tests.Testing;

// PluginHost.Testing as a third party uses it: built plugins loaded through the verifier, frames run, nothing attached.
[Trait("Category", "Kernel")]
public sealed class TestChainTests
{
    private static string Dll(string plugin) => Path.Combine(Repo.PluginsDirectory, plugin, plugin + ".dll");

    [KernelFact]
    public void A_stage_from_its_dll_redirects_counts_and_shows_its_map()
    {
        using var chain = TestChain.LoadDll(Dll("SourcePolicy"), """
            routes:
              - from: 198.18.1.0/24
                interface: lo
            """);

        Assert.Contains("canary of stage 0 (SourcePolicy) 'route 198.18.1.0/24': redirect to ifindex 1 — ok", chain.Canaries);
        var routed = chain.Run(Frame.Udp("198.18.1.10", "198.18.9.1").Build()).ExpectRedirect(1);
        Assert.Equal(63, routed.Output[14 + 8]);
        chain.Run(Frame.Udp("198.18.2.10", "198.18.9.1").Build()).ExpectPass();
        var e = Assert.Throws<FrameAssertionException>(() => chain.Run(Frame.Udp("198.18.2.10", "198.18.9.1").Build()).ExpectDrop());
        Assert.Equal("check frame verdict: expected drop, got pass", e.Message);

        Assert.Equal(1ul, chain.StageCounters()["redirected"]);
        Assert.Equal(1ul, chain.StageCounters()["matched"]);
        var route = Assert.Single(chain.MapEntries("routes"));
        Assert.Equal(1ul, route.Value["ifindex"]);
        chain.ResetCounters();
        Assert.Equal(0ul, chain.StageCounters()["redirected"]);
    }

    [KernelFact]
    public void A_chain_hands_what_the_first_stage_leaves_to_the_second()
    {
        using var chain = TestChain.LoadChain(
        [
            TestStage.FromDll(Dll("SourcePolicy"), "routes:\n  - { from: 198.18.1.0/24, interface: lo }\n"),
            TestStage.FromDll(Dll("FiveTuplePolicy"), "rules:\n  - { name: no-dns, protocol: udp, dport: 53, action: drop }\n"),
        ]);

        chain.Run(Frame.Udp("198.18.1.10", "198.18.9.1", destinationPort: 53).Build()).ExpectRedirect(1);
        chain.Run(Frame.Udp("198.18.2.10", "198.18.9.1", destinationPort: 53).Build()).ExpectDrop();
        Assert.Equal(1ul, chain.StageCounters(1)["dropped"]);
    }

    [KernelFact]
    public void A_template_the_verifier_rejects_fails_naming_the_template_line()
    {
        var e = Assert.Throws<TestChainException>(() =>
            TestChain.LoadDll(Path.Combine(Repo.MarkPolicy(1), "MarkPolicy.dll"), "verifierBug: true\n"));

        Assert.StartsWith("load test chain: load chain for pipeline check: the verifier rejected", e.Message);
        Assert.Matches(@"@ MarkPolicy/mark_policy\.c\.sbn:\d+", e.Message);
    }

    [KernelFact]
    public void Settings_the_plugin_refuses_fail_at_their_line()
    {
        var e = Assert.Throws<TestChainException>(() => TestChain.LoadDll(Dll("SourcePolicy"), """
            routes:
              - from: 198.18.1.5/24
                interface: lo
            """));

        Assert.Contains("settings.yaml:2:", e.Message);
        Assert.Contains("host bits are set", e.Message);
    }
}
