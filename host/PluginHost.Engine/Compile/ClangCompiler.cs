using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace PluginHost.Compile;

/// <summary>
/// Compiles a composed chain with clang into a BPF object, with BTF (-g) so bpftool shows fields
/// and the verifier shows template lines. Objects are cached by the hash of source and flags.
/// </summary>
public sealed class ClangCompiler(string cacheDirectory, string clang = "clang-19") : Datapath.IChainCompiler
{
    public string CacheDirectory { get; } = cacheDirectory;

    public string Clang { get; } = clang;

    public IReadOnlyList<string> Flags { get; } =
    [
        "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-Wno-unused-function",
        $"-I/usr/include/{MultiarchTriple()}",
    ];

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
        var psi = new ProcessStartInfo(Clang) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var flag in Flags)
            psi.ArgumentList.Add(flag);
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(src);
        psi.ArgumentList.Add("-o");
        psi.ArgumentList.Add(tmp);
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CompileException($"compile chain {name}: cannot run {Clang}: {e.Message} (apt-get install clang-19)", "");
        }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                File.Delete(tmp);
                File.Move(src, Path.Combine(CacheDirectory, $"{name}-{hash}.failed.c"), overwrite: true);
                string output = stderr.Result;
                throw new CompileException($"compile chain {name}: clang failed:\n{Summarise(output)}", output);
            }
        }
        File.Move(tmp, obj, overwrite: true);
        File.Move(src, Path.Combine(CacheDirectory, $"{name}-{hash}.c"), overwrite: true); // kept beside the object for debugging
        return new CompileResult(obj, Cached: false);
    }

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

/// <summary>clang rejected the chain; <see cref="Output"/> holds all of its diagnostics.</summary>
internal sealed class CompileException(string message, string output) : HostException(message)
{
    public string Output { get; } = output;
}
