using System.Diagnostics;
using PluginHost.Compile;
using PluginHost.Config;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Plugins;
using PluginHost.TestSupport;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Plugins;

/// <summary><c>pluginhost plugin check</c>: compile, verify and run the canaries of one plugin with nothing attached or pinned.</summary>
[Trait("Category", "Kernel")]
public sealed class PluginCheckTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-check-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Settings(string yaml)
    {
        string file = Path.Combine(_dir, $"settings-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, yaml);
        return file;
    }

    private ClangCompiler Compiler => new(Path.Combine(_dir, "cache"));

    // Every pin under the BPF filesystem and every program attached to lo: what a check must leave as it found it.
    private static (IReadOnlyList<string> Pins, string Lo) Kernel()
    {
        var pins = Directory.EnumerateFileSystemEntries("/sys/fs/bpf", "*", SearchOption.AllDirectories)
            .Where(p => p.Contains("/" + PluginCheck.Pipeline, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        var psi = new ProcessStartInfo("bpftool", "net show dev lo") { RedirectStandardOutput = true };
        using var bpftool = Process.Start(psi)!;
        string lo = bpftool.StandardOutput.ReadToEnd();
        bpftool.WaitForExit();
        return (pins, lo);
    }

    private static void AssertLeftAsFound((IReadOnlyList<string> Pins, string Lo) before)
    {
        var after = Kernel();
        Assert.Equal(before.Pins, after.Pins);
        Assert.Equal(before.Lo, after.Lo);
    }

    [KernelFact]
    public void A_good_plugin_passes_with_its_canaries_listed_and_nothing_is_left_attached_or_pinned()
    {
        var before = Kernel();

        var result = PluginCheck.Run(Path.Combine(Repo.PluginsDirectory, "SourcePolicy"), Settings("""
            routes:
              - from: 198.18.1.0/24
                interface: lo
              - from: 198.18.2.0/24
                interface: nosuch0
            """), "lo", Direction.Ingress, Compiler);

        Assert.Equal("SourcePolicy", result.Plugin);
        Assert.Equal(64, result.Sha256.Length);
        Assert.NotEmpty(result.Version);
        Assert.Contains(result.Warnings, w => w.Contains("interface 'nosuch0' does not exist", StringComparison.Ordinal));
        Assert.Contains(result.Check.Programs, p => p.Program == PluginHost.Compose.ChainSpec.EntryProgram && p.Instructions > 0 && p.JitedBytes > 0);
        Assert.Contains("canary of host 'ARP reaches the kernel': pass — ok", result.Check.Canaries);
        Assert.Contains("canary of stage 0 (SourcePolicy) 'route 198.18.1.0/24': redirect to ifindex 1 — ok", result.Check.Canaries);
        Assert.Contains("canary of stage 0 (SourcePolicy) 'withdrawn route 198.18.2.0/24': pass — ok", result.Check.Canaries);
        AssertLeftAsFound(before);
    }

    [KernelFact]
    public void A_template_the_verifier_rejects_fails_with_the_verifiers_message_and_the_template_line()
    {
        var before = Kernel();

        var e = Assert.Throws<PluginCheckException>(() =>
            PluginCheck.Run(Repo.MarkPolicy(1), Settings("verifierBug: true\n"), "lo", Direction.Ingress, Compiler));

        Assert.StartsWith("check plugin MarkPolicy: load chain for pipeline check: the verifier rejected", e.Message);
        Assert.Contains("invalid access to packet", e.Message);
        Assert.Matches(@"@ MarkPolicy/mark_policy\.c\.sbn:\d+", e.Message);
        AssertLeftAsFound(before);
    }

    [KernelFact]
    public void A_wrong_canary_fails_naming_the_canary()
    {
        var before = Kernel();

        var e = Assert.Throws<PluginCheckException>(() =>
            PluginCheck.Run(Repo.MarkPolicy(1), Settings("canaryBug: true\n"), "lo", Direction.Ingress, Compiler));

        Assert.Equal("check plugin MarkPolicy: canary pipeline check: canary of stage 0 (MarkPolicy) 'expects a drop': expected drop, got pass", e.Message);
        AssertLeftAsFound(before);
    }

    [KernelFact]
    public void Settings_the_plugin_refuses_are_reported_at_their_line_in_the_settings_file()
    {
        string file = Settings("routes:\n  - from: 198.18.1.5/24\n    interface: lo\n");

        var e = Assert.Throws<ConfigException>(() => PluginCheck.Run(Path.Combine(Repo.PluginsDirectory, "SourcePolicy"), file, "lo", Direction.Ingress, Compiler));

        Assert.StartsWith("check plugin SourcePolicy: settings: 1 problem:", e.Message);
        Assert.Contains($"{file}:2: routes[0].from: invalid prefix '198.18.1.5/24'", e.Message);
    }
}

/// <summary>What <c>plugin check</c> refuses before anything is loaded, and the verifier's file names.</summary>
[Trait("Category", "Unit")]
public sealed class PluginCheckUnitTests
{
    [Fact]
    public void A_folder_not_named_after_its_DLL_is_refused_with_what_it_holds()
    {
        var dir = Directory.CreateTempSubdirectory("pluginhost-check-named-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "DscpRouter.dll"), "");
            var e = Assert.Throws<PluginCheckException>(() => PluginCheck.Run(dir.FullName, null, "lo", Direction.Ingress, new ClangCompiler(dir.FullName)));
            Assert.Equal($"check plugin {dir.Name}: no {dir.Name}.dll in {dir.FullName} (a plugin's folder and DLL carry its name, the one configuration " +
                "uses: copy the build output into a folder named after it; DLLs here: DscpRouter.dll)", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Verifier_lines_name_the_plugin_folder_of_the_template()
    {
        const string source = "#line 1 \"generated/stage0-A-maps.h\"\n#line 4 \"A/a.c.sbn\"\nx\n#line 9 \"B/b.c.sbn\"\n#line 2 \"C/b.c.sbn\"\n";
        const string log = "  ;  @ a.c.sbn:6\n  ;  @ b.c.sbn:3\n  ;  @ ph_entry.c.sbn:40\n";

        Assert.Equal("  ;  @ A/a.c.sbn:6\n  ;  @ b.c.sbn:3\n  ;  @ ph_entry.c.sbn:40\n", ChainLoader.WithTemplatePaths(log, source));
    }
}
