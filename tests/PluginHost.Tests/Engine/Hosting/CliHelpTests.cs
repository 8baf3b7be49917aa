using System.Diagnostics;
using PluginHost.TestSupport;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Hosting;

/// <summary>Issue 14: <c>pluginhost --help</c> never listed the plugins' verbs.</summary>
[Trait("Category", "Kernel")]
public sealed class CliHelpTests
{
    private static (int Exit, string Output) Pluginhost(params string[] args)
    {
        var psi = new ProcessStartInfo(Path.Combine(Repo.Root, "artifacts", "pluginhost", "pluginhost"), args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout + stderr.Result);
    }

    [KernelFact]
    public void Help_with_a_configuration_lists_the_plugins_verbs()
    {
        // A private runtime directory: no running host answers, so the verbs come from the configuration's plugins.
        var work = Directory.CreateTempSubdirectory("pluginhost-help-");
        string config = Path.Combine(work.FullName, "router.yaml");
        File.WriteAllText(config, HostYaml.Config(Repo.PluginsDirectory, "/sys/fs/bpf/pluginhost-help", Path.Combine(work.FullName, "run"),
            Path.Combine(work.FullName, "cache"), HostYaml.Pipeline("p", null, "lo", "      - plugin: SourcePolicy\n        settings: { routes: [] }\n")));
        int exit;
        string output;
        try
        {
            (exit, output) = Pluginhost("--help", "--config", config);
        }
        finally
        {
            work.Delete(recursive: true);
        }

        Assert.Equal(0, exit);
        Assert.Contains("route add, route del, route list, route load", output);
        Assert.Matches(@"\n\s+route\s+Runtime commands of SourcePolicy", output);
        Assert.Matches(@"\n\s+plugin\s+One plugin, offline", output);
    }
}
