using System.Diagnostics;
using System.Runtime.InteropServices;
using Xunit;

namespace PluginHost.Tests.Engine.Compose;

/// <summary>
/// A unit test that needs a C compiler (no root, no kernel). Outside CI it is skipped when the
/// compiler is missing; under CI=true it always runs, so a missing compiler fails it.
/// </summary>
public sealed class CompilerFactAttribute : FactAttribute
{
    public CompilerFactAttribute(string compiler = Clang.Name)
    {
        if (Environment.GetEnvironmentVariable("CI") != "true" && Clang.Find(compiler) is null)
            Skip = $"needs {compiler} (apt-get install {compiler}); runs in CI";
    }
}

/// <summary>Runs a C compiler on a source text and reports what it said.</summary>
public static class Clang
{
    public const string Name = "clang-19";

    public static string MultiarchInclude => "-I/usr/include/" + (RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "aarch64-linux-gnu" : "x86_64-linux-gnu");

    /// <summary>The full path of <paramref name="program"/> on PATH, or null.</summary>
    public static string? Find(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);

    /// <summary>Compile <paramref name="source"/> for BPF into a temporary object; returns clang's exit code and diagnostics.</summary>
    public static (int ExitCode, string Output) CompileBpf(string source, params string[] extraFlags) =>
        Run(Name, source, ["-O2", "-g", "-target", "bpf", "-c", MultiarchInclude, .. extraFlags], ".o");

    /// <summary>Run <paramref name="compiler"/> with <paramref name="flags"/> on a temporary .c file, writing to a temporary output.</summary>
    public static (int ExitCode, string Output) Run(string compiler, string source, IEnumerable<string> flags, string outputExtension, Action<string>? useOutput = null)
    {
        string dir = Directory.CreateTempSubdirectory("ph-cc-").FullName;
        try
        {
            string src = Path.Combine(dir, "test.c");
            string output = Path.Combine(dir, "test" + outputExtension);
            File.WriteAllText(src, source);
            var psi = new ProcessStartInfo(compiler) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var flag in flags)
                psi.ArgumentList.Add(flag);
            psi.ArgumentList.Add(src);
            psi.ArgumentList.Add("-o");
            psi.ArgumentList.Add(output);
            using var process = Process.Start(psi)!;
            var stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode == 0)
                useOutput?.Invoke(output);
            return (process.ExitCode, stdout + stderr.Result);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
