using System.Diagnostics;
using PluginHost.Compile;
using PluginHost.Net;
using PluginHost.Tests.Support;
using PluginHost.TestSupport;
using Xunit;

namespace PluginHost.Tests.Engine.Compile;

/// <summary>clang runs in its own process group, under a time and a memory limit, and dies with the host: proven with fake clangs.</summary>
public sealed class ClangLimitsTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("pluginhost-clang-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_work, recursive: true); } catch (IOException) { }
    }

    // A fake clang: a shell script with this body, executable.
    private string FakeClang(string body, string name = "fake-clang")
    {
        string path = Path.Combine(_work, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        return path;
    }

    private string Cache => Path.Combine(_work, "cache");

    [Fact]
    public void AClangThatRunsTooLongIsKilledWithItsWholeGroup()
    {
        string pids = Path.Combine(_work, "pids");
        // A child in clang's group (what a forking compiler leaves), then clang itself sleeps.
        string clang = FakeClang($"sleep 600 & echo $! > {pids}.child; echo $$ > {pids}.tmp; mv {pids}.tmp {pids}; exec sleep 600");
        var compiler = new ClangCompiler(Cache, clang, new ClangLimits(TimeSpan.FromSeconds(1), ClangLimits.DefaultMemoryBytes));

        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<CompileException>(() => compiler.Compile("int x;", "lan-in"));
        Assert.Equal("compile chain for pipeline lan-in: clang ran longer than 1 s (killed)", e.Message);
        Assert.InRange(watch.Elapsed.TotalSeconds, 0.9, 10);

        int pid = int.Parse(File.ReadAllText(pids));
        int child = int.Parse(File.ReadAllText(pids + ".child"));
        Assert.NotEqual(Environment.ProcessId, pid);
        Assert.True(SpinWait.SpinUntil(() => Gone(pid) && Gone(child), TimeSpan.FromSeconds(5)), $"clang {pid} and its child {child} are gone");
        // Nothing left in the cache directory but what a failed build never writes: no scratch source, no object.
        Assert.Empty(Directory.GetFiles(Cache));
    }

    [Fact]
    public void ClangRunsInItsOwnProcessGroupUnderTheMemoryLimitAndDiesWithItsParent()
    {
        string clang = FakeClang("echo \"pgid $(cut -d' ' -f5 /proc/$$/stat) pid $$\" >&2; grep -E 'Max address space' /proc/$$/limits >&2; " +
                                 "grep -E '^PPid' /proc/$$/status >&2; exit 1");
        var compiler = new ClangCompiler(Cache, clang, new ClangLimits(TimeSpan.FromSeconds(30), 300L << 20));
        var e = Assert.Throws<CompileException>(() => compiler.Compile("int x;", "p"));
        var output = e.Output.Split('\n');
        var ids = output[0].Split(' ');
        Assert.Equal(ids[1], ids[3]); // its own group: the group id is its pid
        Assert.Contains((300L << 20).ToString(), output[1]); // RLIMIT_AS, soft and hard
        Assert.Equal(Environment.ProcessId.ToString(), output[2].Split('\t', ' ').Last()); // the wrappers exec'd: the host is the parent
    }

    [Fact]
    public void AClangOverTheMemoryLimitFailsWithAClearMessage()
    {
        // mawk (Debian's awk) doubles a string until an allocation fails.
        string clang = FakeClang("exec awk 'BEGIN { s = \"x\"; while (1) s = s s }'");
        var compiler = new ClangCompiler(Cache, clang, new ClangLimits(TimeSpan.FromSeconds(30), 256L << 20));
        var e = Assert.Throws<CompileException>(() => compiler.Compile("int x;", "p"));
        Assert.StartsWith("compile chain for pipeline p: clang ran out of memory (limit 256 MiB; raise it with PLUGINHOST_CLANG_MEMORY_MB)", e.Message);
    }

    [Fact]
    public void AMissingClangSaysHowToInstallIt()
    {
        var compiler = new ClangCompiler(Cache, Path.Combine(_work, "no-such-clang"), ClangLimits.Default);
        var e = Assert.Throws<CompileException>(() => compiler.Compile("int x;", "p"));
        Assert.StartsWith("compile chain for pipeline p: cannot run ", e.Message);
        Assert.EndsWith("(apt-get install clang-19)", e.Message);
    }

    [Fact]
    public void LimitsComeFromTheEnvironmentAndBadValuesAreRefused()
    {
        Assert.Equal(ClangLimits.Default, ClangLimits.FromEnvironmentValues(null, null));
        Assert.Equal(new ClangLimits(TimeSpan.FromSeconds(2.5), 512L << 20), ClangLimits.FromEnvironmentValues("2.5", "512"));
        Assert.Equal("read PLUGINHOST_CLANG_TIMEOUT_SECONDS: invalid value 'soon': expected seconds, more than 0 and at most 86400",
            Assert.Throws<CompileException>(() => ClangLimits.FromEnvironmentValues("soon", null)).Message);
        Assert.Equal("read PLUGINHOST_CLANG_MEMORY_MB: invalid value '1': expected MiB, from 64 to 1048576",
            Assert.Throws<CompileException>(() => ClangLimits.FromEnvironmentValues(null, "1")).Message);
    }

    [KernelFact]
    public void AKilledHostsClangDiesWithIt()
    {
        using var rig = new ReloadRig();
        // A private cache, so the chain is compiled, by a clang-19 found first on the host's PATH that never finishes.
        File.WriteAllText(rig.ConfigPath, HostYaml.Config(rig.Plugins, rig.BpfRoot, rig.RuntimeDirectory, Path.Combine(_work, "cache"),
            HostYaml.Pipeline("p", null, "lo", "      - plugin: SourcePolicy\n        settings:\n          routes: []\n")));
        string bin = Directory.CreateDirectory(Path.Combine(_work, "bin")).FullName;
        string pids = Path.Combine(_work, "clang.pid");
        FakeClang($"echo $$ > {pids}.tmp; mv {pids}.tmp {pids}; exec sleep 600", Path.Combine("bin", "clang-19"));
        var psi = new ProcessStartInfo(Path.Combine(Repo.Root, "artifacts", "pluginhost", "pluginhost"), ["run", "--config", rig.ConfigPath])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        psi.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
        using var host = Process.Start(psi)!;
        host.OutputDataReceived += (_, _) => { };
        host.ErrorDataReceived += (_, _) => { };
        host.BeginOutputReadLine();
        host.BeginErrorReadLine();
        int clang;
        try
        {
            Assert.True(SpinWait.SpinUntil(() => File.Exists(pids), TimeSpan.FromSeconds(60)), "the host started clang");
            clang = int.Parse(File.ReadAllText(pids));
            Assert.Equal(clang, ProcessGroups.Of(clang)); // its own group, not the host's
            Assert.False(Gone(clang));
        }
        finally
        {
            host.Kill(); // SIGKILL: no cleanup code runs in the host
            host.WaitForExit();
        }
        Assert.True(SpinWait.SpinUntil(() => Gone(clang), TimeSpan.FromSeconds(5)), $"clang {clang} died with the host");
        Assert.False(Directory.Exists(Path.Combine(rig.BpfRoot, "p")), "nothing was pinned");
    }

    // Gone, or a zombie nobody reaps (PID 1 of a container may not).
    internal static bool Gone(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] == 'Z';
        }
        catch (IOException)
        {
            return true;
        }
    }
}
