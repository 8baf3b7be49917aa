using System.Diagnostics;
using System.Net;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using PluginHost.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Sdk;

/// <summary>
/// What a third party does, with nothing of this repository but its packages: pack them into a local feed, create a strategy
/// with <c>dotnet new pluginhost-strategy</c> in a directory outside the repository, build it with PackageReferences only,
/// run its generated test (the stage loaded through the verifier) and <c>pluginhost plugin check</c> its drop-in folder; then
/// drop it into a running host under traffic: live with no restart, not a datagram lost or on another uplink.
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class StrategyTemplateTests(ITestOutputHelper output)
{
    [KernelFact]
    public void A_strategy_made_by_dotnet_new_builds_from_the_packages_alone_passes_its_test_and_the_check()
    {
        var root = Directory.CreateTempSubdirectory("pluginhost-sdk-");
        try
        {
            // A version of its own: the machine's package cache never holds a stale copy of it, and this run's copies stay here.
            string version = $"2.5.0-proof.{DateTime.UtcNow:yyyyMMddHHmmss}";
            string feed = Path.Combine(root.FullName, "feed");
            foreach (var project in new[] { "host/PluginHost.Contract", "host/PluginHost.Testing" })
                Dotnet(Repo.Root, "pack", Path.Combine(Repo.Root, project), "-c", "Release", "--no-build", "-o", feed, $"-p:PackageVersion={version}");
            Dotnet(Repo.Root, "pack", Path.Combine(Repo.Root, "templates/PluginHost.Templates"), "-c", "Release", "-o", feed, $"-p:PackageVersion={version}");

            string work = Directory.CreateDirectory(Path.Combine(root.FullName, "work")).FullName;
            string machineCache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            // The local feed, and the machine's own sources from its user configuration for xunit and the like (already in its cache, mostly).
            File.WriteAllText(Path.Combine(work, "nuget.config"), $"""
                <configuration>
                  <config><add key="globalPackagesFolder" value="{Path.Combine(root.FullName, "packages")}" /></config>
                  <fallbackPackageFolders><add key="machine" value="{machineCache}" /></fallbackPackageFolders>
                  <packageSources><add key="local" value="{feed}" /></packageSources>
                </configuration>
                """);
            string hive = Path.Combine(root.FullName, "hive");
            Dotnet(work, "new", "install", Path.Combine(feed, $"PluginHost.Templates.{version}.nupkg"), "--debug:custom-hive", hive);
            Dotnet(work, "new", "pluginhost-strategy", "-n", "DscpRouter", "--debug:custom-hive", hive);
            string strategy = Path.Combine(work, "DscpRouter");
            Assert.DoesNotContain("ProjectReference Include=\"" + Repo.Root, File.ReadAllText(Path.Combine(strategy, "tests/DscpRouter.Tests/DscpRouter.Tests.csproj")));

            Dotnet(strategy, "build", "-c", "Release");
            string tests = Dotnet(strategy, "test", "-c", "Release", "--no-build");
            Assert.Contains("Passed!", tests);
            Assert.Contains(Directory.EnumerateFiles(Path.Combine(root.FullName, "packages"), "*.nupkg", SearchOption.AllDirectories),
                p => Path.GetFileName(p) == $"pluginhost.testing.{version}.nupkg");

            string check = Run(Path.Combine(Repo.Root, "artifacts", "pluginhost", "pluginhost"), strategy,
                "plugin", "check", Path.Combine(strategy, "artifacts", "plugins", "DscpRouter"), "--settings", Path.Combine(strategy, "samples", "settings.yaml"));
            Assert.Contains("'class 46 out of lo': redirect to ifindex 1 — ok", check);

            DropIntoARunningHost(Path.Combine(strategy, "artifacts", "plugins", "DscpRouter"));
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    // A host runs SourcePolicy (client source A out of uplink 2) under a UDP stream; the new strategy's folder is copied
    // into its plugins directory and the configuration puts it first (class 46 out of uplink 1; the stream is class 0,
    // so SourcePolicy still decides): the running host picks both up by itself.
    private void DropIntoARunningHost(string dropIn)
    {
        using var lab = new RouterLab("s" + Guid.NewGuid().ToString("N")[..4]);
        using var rig = new ReloadRig();
        using var hosts = new HostProcesses(output);
        rig.UsePlugin(Path.Combine(Repo.PluginsDirectory, "SourcePolicy"));
        string sourcePolicy = $"""
                  - plugin: SourcePolicy
                    settings:
                      routes:
                        - from: {RouterLab.ClientSourceA}/32
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}
            """;
        rig.WriteConfig(lab.Router.Name, RouterLab.RouterLan, sourcePolicy);
        var host = hosts.Start(rig.ConfigPath);
        HostProcesses.WaitFor(() => ReloadHistory.Load(rig.RuntimeDirectory).Reloads >= 1, "the host's first apply");
        UdpTraffic.Send(lab.Client, RouterLab.ClientSourceA, new IPEndPoint(RouterLab.ServerAddress, 9999), 3); // neighbours
        int up2 = int.Parse(lab.Server.Exec("cat", $"/sys/class/net/{RouterLab.ServerUplink2}/ifindex").Trim());
        using var udp = UdpStream.Start(lab.Client, RouterLab.ClientSourceA, lab.Server, new IPEndPoint(RouterLab.ServerAddress, 9100), 5_000,
            trackInterfaces: true);
        Thread.Sleep(300);

        var copy = new DirectoryInfo(Path.Combine(rig.Plugins, "DscpRouter"));
        copy.Create();
        foreach (var file in new DirectoryInfo(dropIn).GetFiles())
            file.CopyTo(Path.Combine(copy.FullName, file.Name));
        rig.WriteConfig(lab.Router.Name, RouterLab.RouterLan, $"""
                  - plugin: DscpRouter
                    settings:
                      classes:
                        - dscp: 46
                          interface: {RouterLab.RouterUplink1}
                          via: {RouterLab.Uplink1Gateway}
            {sourcePolicy}
            """);
        HostProcesses.WaitFor(() => PipelineState.Load(rig.RuntimeDirectory, "p")?.Stages.Count == 2, "the host to run the dropped-in strategy",
            TimeSpan.FromSeconds(20));
        Thread.Sleep(500);
        var result = udp.Stop();
        var state = PipelineState.Load(rig.RuntimeDirectory, "p")!;
        output.WriteLine($"udp: {result}; arrivals by ifindex {string.Join(", ", result.ArrivalsByInterface.Select(i => $"{i.Key}: {i.Value}"))}; " +
                         $"stages {string.Join(", ", state.Stages.Select(st => st.Plugin))}, generation {state.Generation}");

        Assert.False(host.HasExited, "the host restarted or died");
        Assert.Equal(["DscpRouter", "SourcePolicy"], state.Stages.Select(st => st.Plugin));
        Assert.True(result.Received > 1_000, $"{result.Received} datagrams received");
        Assert.Equal(0, result.Lost);
        Assert.Equal(result.ArrivalsByInterface.Values.Sum(), result.ArrivalsByInterface.GetValueOrDefault(up2)); // none the wrong way
    }

    private string Dotnet(string directory, params string[] arguments) => Run("dotnet", directory, arguments);

    // Output (both streams) of a command that must succeed; no build server is left running after it.
    private string Run(string program, string directory, params string[] arguments)
    {
        var psi = new ProcessStartInfo(program) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            psi.ArgumentList.Add(argument);
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        psi.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        psi.Environment["UseSharedCompilation"] = "false";
        // The test host's own MSBuild settings would steer the child's build.
        foreach (var inherited in new[] { "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildExtensionsPath", "MSBuildLoadMicrosoftTargetsReadOnly" })
            psi.Environment.Remove(inherited);
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"run {program} {string.Join(' ', arguments)}: still running after 3 minutes");
        }
        string all = stdout + stderr.Result;
        output.WriteLine($"$ {Path.GetFileName(program)} {string.Join(' ', arguments)}  ({watch.Elapsed.TotalSeconds:F1} s)\n{all}");
        Assert.True(process.ExitCode == 0, $"run {program} {string.Join(' ', arguments)}: exit code {process.ExitCode}\n{all}");
        return all;
    }
}
