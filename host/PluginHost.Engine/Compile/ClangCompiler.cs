using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using PluginHost.Net;

namespace PluginHost.Compile;

/// <summary>
/// Compiles a composed chain with clang into a BPF object, with BTF (-g) so bpftool shows fields
/// and the verifier shows template lines. Objects are cached by the hash of source and flags.
/// </summary>
/// <remarks>
/// clang runs under <see cref="ClangLimits"/>: in its own session and process group (<c>setsid</c>), with
/// <c>PR_SET_PDEATHSIG</c> = SIGKILL (<c>setpriv --pdeathsig</c>: .NET's <see cref="Process"/> cannot set it), and
/// RLIMIT_AS (<c>prlimit --as</c>), all util-linux, which Debian installs on every system (Essential). Each wrapper
/// execs the next, so the pid the host holds is clang's and the group is clang's alone. When the time limit passes
/// the whole group is killed. The death signal fires when the thread that started clang exits: <see cref="Compile"/>
/// waits on that same thread, so it is the host's death (or that thread's) that kills clang, nothing else.
/// </remarks>
public sealed class ClangCompiler(string cacheDirectory, string clang = "clang-19", ClangLimits? limits = null) : Datapath.IChainCompiler
{
    public string CacheDirectory { get; } = cacheDirectory;

    public string Clang { get; } = clang;

    public ClangLimits Limits { get; } = limits ?? ClangLimits.FromEnvironment();

    public IReadOnlyList<string> Flags { get; } =
    [
        "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-Wno-unused-function",
        $"-I/usr/include/{MultiarchTriple()}",
    ];

    /// <summary>The pid of the clang running now (tests watch it), or null.</summary>
    internal int? RunningPid { get; private set; }

    /// <summary>Compile (or take from the cache) and return the object path.</summary>
    public CompileResult Compile(string source, string name)
    {
        Directory.CreateDirectory(CacheDirectory);
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Clang + "\0" + string.Join(' ', Flags) + "\0" + source)))[..24];
        string obj = Path.Combine(CacheDirectory, $"{name}-{hash}.o");
        if (File.Exists(obj))
            return new CompileResult(obj, Cached: true);

        // Unique scratch names: two builds of the same chain may race (tests, two hosts); the rename is atomic.
        string scratch = $"{Environment.ProcessId}-{Guid.NewGuid():N}"[..16];
        string src = Path.Combine(CacheDirectory, $"{name}-{hash}.{scratch}.c");
        File.WriteAllText(src, source);
        string tmp = obj + $".{scratch}.tmp";
        var (exit, output) = Run([.. Flags, "-c", src, "-o", tmp], name, () => { File.Delete(tmp); File.Delete(src); });
        if (exit != 0)
        {
            File.Delete(tmp);
            File.Move(src, Path.Combine(CacheDirectory, $"{name}-{hash}.failed.c"), overwrite: true);
            throw new CompileException(FailureMessage(name, exit, output), output);
        }
        File.Move(tmp, obj, overwrite: true);
        File.Move(src, Path.Combine(CacheDirectory, $"{name}-{hash}.c"), overwrite: true); // kept beside the object for debugging
        return new CompileResult(obj, Cached: false);
    }

    // clang under its limits: setsid → setpriv --pdeathsig KILL → prlimit --as → clang, each exec'ing the next.
    private (int Exit, string Output) Run(IReadOnlyList<string> arguments, string name, Action cleanUp)
    {
        var psi = new ProcessStartInfo("setsid") { RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true };
        foreach (var arg in (string[])["setpriv", "--pdeathsig", "KILL", "prlimit", $"--as={Limits.MemoryBytes}", "--", Clang, .. arguments])
            psi.ArgumentList.Add(arg);
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            cleanUp();
            throw new CompileException($"compile chain for pipeline {name}: cannot run setsid: {e.Message} (apt-get install util-linux)", "");
        }
        using (process)
        {
            RunningPid = process.Id;
            try
            {
                process.StandardInput.Close();
                var stderr = process.StandardError.ReadToEndAsync();
                var stdout = process.StandardOutput.ReadToEndAsync();
                if (!process.WaitForExit(Limits.Timeout))
                {
                    // Not reaped yet, so its pid (and group id) cannot have been reused: kill the group, then anything the
                    // tree still holds outside it.
                    Kill(process);
                    process.WaitForExit();
                    cleanUp();
                    throw new CompileException($"compile chain for pipeline {name}: clang ran longer than {Seconds(Limits.Timeout)} s (killed)", "");
                }
                process.WaitForExit(); // the output is complete
                // A process clang left behind may still hold the pipes: never wait for it.
                Task.WaitAll([stderr, stdout], TimeSpan.FromSeconds(5));
                return (process.ExitCode, stderr.IsCompletedSuccessfully ? stderr.Result : "");
            }
            finally
            {
                RunningPid = null;
            }
        }
    }

    private static void Kill(Process process)
    {
        try
        {
            ProcessGroups.Kill(process.Id);
        }
        catch (HostException)
        {
        }
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // gone already
        }
    }

    private string FailureMessage(string name, int exit, string output)
    {
        if (exit == 127 && output.Contains("prlimit: failed to execute", StringComparison.Ordinal))
            return $"compile chain for pipeline {name}: cannot run {Clang}: {output.Trim()} (apt-get install clang-19)";
        // RLIMIT_AS: allocations fail (LLVM reports it and aborts) or shared libraries do not map.
        if (output.Contains("out of memory", StringComparison.OrdinalIgnoreCase) || output.Contains("bad_alloc", StringComparison.Ordinal)
            || output.Contains("Cannot allocate memory", StringComparison.Ordinal) || output.Contains("failed to map segment", StringComparison.Ordinal))
            return $"compile chain for pipeline {name}: clang ran out of memory (limit {Limits.MemoryBytes / (1024 * 1024)} MiB; raise it with {ClangLimits.MemoryVariable}):\n{Summarise(output)}";
        return $"compile chain for pipeline {name}: clang failed{(exit > 128 ? $" (killed by signal {exit - 128})" : "")}:\n{Summarise(output)}";
    }

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);

    // Keep the diagnostics ("file:line:col: error: ...") and their source lines, drop clang's chatter.
    private static string Summarise(string output)
    {
        var lines = output.Split('\n').Where(l => l.Length > 0 && !l.StartsWith("In file included", StringComparison.Ordinal)).Take(20);
        return string.Join('\n', lines.Select(l => "  " + l));
    }

    private static string MultiarchTriple() => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.Arm64 => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
}

public sealed record CompileResult(string ObjectPath, bool Cached);

/// <summary>
/// How long clang may run and how much address space it may map (RLIMIT_AS). Defaults: 60 s and 2 GiB (clang-19 maps
/// about 300 MB for the chains the host builds); <c>PLUGINHOST_CLANG_TIMEOUT_SECONDS</c> and
/// <c>PLUGINHOST_CLANG_MEMORY_MB</c> in the host's environment override them.
/// </summary>
public sealed record ClangLimits(TimeSpan Timeout, long MemoryBytes)
{
    public const string TimeoutVariable = "PLUGINHOST_CLANG_TIMEOUT_SECONDS";
    public const string MemoryVariable = "PLUGINHOST_CLANG_MEMORY_MB";

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);
    public const long DefaultMemoryBytes = 2L << 30;

    public static ClangLimits Default { get; } = new(DefaultTimeout, DefaultMemoryBytes);

    /// <summary>The defaults, with what the environment overrides; a value that is not a positive number is refused.</summary>
    public static ClangLimits FromEnvironment() =>
        FromEnvironmentValues(Environment.GetEnvironmentVariable(TimeoutVariable), Environment.GetEnvironmentVariable(MemoryVariable));

    internal static ClangLimits FromEnvironmentValues(string? timeoutSeconds, string? memoryMiB)
    {
        var timeout = DefaultTimeout;
        long memory = DefaultMemoryBytes;
        if (timeoutSeconds is { Length: > 0 } t)
            timeout = double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds > 0 && seconds <= 86_400
                ? TimeSpan.FromSeconds(seconds)
                : throw new CompileException($"read {TimeoutVariable}: invalid value '{Cut(t)}': expected seconds, more than 0 and at most 86400", "");
        if (memoryMiB is { Length: > 0 } m)
            memory = long.TryParse(m, NumberStyles.None, CultureInfo.InvariantCulture, out long mb) && mb >= 64 && mb <= 1L << 20
                ? mb << 20
                : throw new CompileException($"read {MemoryVariable}: invalid value '{Cut(m)}': expected MiB, from 64 to 1048576", "");
        return new ClangLimits(timeout, memory);
    }

    private static string Cut(string value) => value.Length <= 40 ? value : value[..40] + "...";
}

/// <summary>clang rejected the chain; <see cref="Output"/> holds all of its diagnostics.</summary>
internal sealed class CompileException(string message, string output) : HostException(message)
{
    public string Output { get; } = output;
}
