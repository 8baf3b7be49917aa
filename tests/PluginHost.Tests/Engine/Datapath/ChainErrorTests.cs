using PluginHost.Compile;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>A fragment the verifier refuses is reported against the plugin and the line of its template
/// (template and clang errors: Compose/ChainComposerTests, no kernel needed).</summary>
[Trait("Category", "Kernel")]
public sealed class ChainErrorTests
{
    private static readonly string Cache = Path.Combine(Path.GetTempPath(), "pluginhost-test-cache");

    private static ChainSpec Compose(string fragment) => ChainComposer.Compose(new PipelinePlan("errors", Direction.Ingress,
    [
        new StagePlan("Broken", new StageTemplate("broken.c.sbn", fragment), [], new Dictionary<string, long>()),
    ]));

    [KernelFact]
    public void VerifierRejectionNamesStagePluginAndTemplateLine()
    {
        var spec = Compose("""
            static __always_inline int {{ stage.function }}(struct __sk_buff *skb, struct ph_meta *meta)
            {
            	struct iphdr *ip = (void *)(long)skb->data + 14;

            	if (ip->ttl == 3) /* no bounds check: the verifier must refuse this */
            		return ph_drop();
            	return ph_next();
            }
            """);
        var compiled = new ClangCompiler(Cache).Compile(spec.Source, "errors");

        var e = Assert.Throws<ChainLoadException>(() => ChainLoader.Load(spec, compiled.ObjectPath, [new Dictionary<string, PluginHost.Pipelines.PackedEntries>()]));

        Assert.Contains("stage 0 (plugin Broken)", e.Message);
        Assert.Contains("broken.c.sbn:5", e.Message);
        var inner = Assert.IsType<PluginHost.Kernel.ProgramLoadException>(e.InnerException);
        Assert.Contains("invalid access to packet", inner.Log);
    }
}
