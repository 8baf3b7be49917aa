using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using PluginHost.Interop;
using PluginHost.Kernel;
using PluginHost.Tests.Engine.Compose;
using Xunit;

namespace PluginHost.Tests.Bpf;

/// <summary>A test that needs a host C compiler (gcc or clang-19); skipped without one unless CI=true.</summary>
public sealed class HostCompilerFactAttribute : FactAttribute
{
    public HostCompilerFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("CI") != "true" && StructLayoutTests.HostCompiler is null)
            Skip = "needs gcc or clang-19 and the libbpf-dev headers; runs in CI";
    }
}

/// <summary>
/// The interop structs must match the C headers byte for byte: a C program compiled against
/// /usr/include/bpf/bpf.h and linux/bpf.h prints the real offsets, which are compared with the
/// managed layouts.
/// </summary>
[Trait("Category", "Unit")]
public sealed class StructLayoutTests
{
    public static string? HostCompiler { get; } = Clang.Find("gcc") ?? Clang.Find("cc") ?? Clang.Find(Clang.Name);

    private static readonly string[] TestRunOptsFields =
        ["sz", "data_in", "data_out", "data_size_in", "data_size_out", "ctx_in", "ctx_out", "ctx_size_in", "ctx_size_out",
         "retval", "repeat", "duration", "flags", "cpu", "batch_size"];

    private static readonly string[] LinkUpdateOptsFields = ["sz", "flags", "old_prog_fd"];

    private static readonly Lazy<Dictionary<string, string>> Native = new(MeasureNative);

    private static Dictionary<string, string> MeasureNative()
    {
        var program = new System.Text.StringBuilder("""
            #include <stddef.h>
            #include <stdio.h>
            #include <linux/bpf.h>
            #include <bpf/bpf.h>

            #define STR(x) #x
            #define XSTR(x) STR(x)
            #define SIZE(s) printf("sizeof %s %zu\n", #s, sizeof(struct s));
            #define OFF(s, f) printf("offsetof %s.%s %zu\n", #s, #f, offsetof(struct s, f));
            #define LAST(s) printf("last %s %s\n", #s, XSTR(s##__last_field));

            int main(void)
            {
            	SIZE(bpf_test_run_opts)
            	LAST(bpf_test_run_opts)
            	SIZE(bpf_link_update_opts)
            	LAST(bpf_link_update_opts)
            	SIZE(__sk_buff)
            	OFF(__sk_buff, cb)
            	OFF(__sk_buff, ifindex)
            	printf("const BPF_F_REPLACE %u\n", (unsigned)BPF_F_REPLACE);
            	printf("const BPF_ANY %u\n", (unsigned)BPF_ANY);
            	printf("const BPF_NOEXIST %u\n", (unsigned)BPF_NOEXIST);

            """);
        foreach (var f in TestRunOptsFields)
            program.Append($"\tOFF(bpf_test_run_opts, {f})\n");
        foreach (var f in LinkUpdateOptsFields)
            program.Append($"\tOFF(bpf_link_update_opts, {f})\n");
        program.Append("\treturn 0;\n}\n");

        string stdout = "";
        var (exitCode, output) = Clang.Run(HostCompiler ?? "gcc", program.ToString(), ["-Wall", "-Werror"], ".bin", exe =>
        {
            using var run = Process.Start(new ProcessStartInfo(exe) { RedirectStandardOutput = true })!;
            stdout = run.StandardOutput.ReadToEnd();
            run.WaitForExit();
            if (run.ExitCode != 0)
                throw new InvalidOperationException($"run layout probe: exit code {run.ExitCode}");
        });
        if (exitCode != 0)
            throw new InvalidOperationException($"compile layout probe with {HostCompiler}:\n{output}\n{program}");
        return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' '))
            .ToDictionary(p => p[0] + " " + p[1], p => p[2]);
    }

    private static int NativeInt(string key) =>
        Native.Value.TryGetValue(key, out var value) ? int.Parse(value) : throw new KeyNotFoundException($"the C probe printed no '{key}'");

    private static void AssertMatches(Type managed, string cName, string[] cFields)
    {
        var fields = managed.GetFields(BindingFlags.Public | BindingFlags.Instance).Select(f => f.Name).ToArray();

        // Same fields, same order, and the managed struct stops at the header's last field.
        Assert.Equal(cFields, fields);
        Assert.Equal(Native.Value[$"last {cName}"], fields[^1]);
        Assert.Equal(NativeInt($"sizeof {cName}"), Marshal.SizeOf(managed));
        foreach (var f in cFields)
            Assert.True(NativeInt($"offsetof {cName}.{f}") == (int)Marshal.OffsetOf(managed, f),
                $"{cName}.{f}: C offset {NativeInt($"offsetof {cName}.{f}")}, managed {Marshal.OffsetOf(managed, f)}");
    }

    [HostCompilerFact]
    public void TestRunOptsMatchesLibbpf() =>
        AssertMatches(typeof(Libbpf.bpf_test_run_opts), "bpf_test_run_opts", TestRunOptsFields);

    [HostCompilerFact]
    public void LinkUpdateOptsMatchesLibbpf() =>
        AssertMatches(typeof(Libbpf.bpf_link_update_opts), "bpf_link_update_opts", LinkUpdateOptsFields);

    [HostCompilerFact]
    public void SkbContextConstantsMatchTheUapiHeader()
    {
        Assert.Equal(BpfProgram.SkbContextSize, NativeInt("sizeof __sk_buff"));
        Assert.Equal(BpfProgram.SkbCbOffset, NativeInt("offsetof __sk_buff.cb"));
        Assert.Equal(BpfProgram.SkbIfindexOffset, NativeInt("offsetof __sk_buff.ifindex"));
    }

    [HostCompilerFact]
    public void FlagConstantsMatchTheUapiHeader()
    {
        Assert.Equal(Libbpf.BPF_F_REPLACE, (uint)NativeInt("const BPF_F_REPLACE"));
        Assert.Equal(Libbpf.BPF_ANY, (ulong)NativeInt("const BPF_ANY"));
        Assert.Equal(Libbpf.BPF_NOEXIST, (ulong)NativeInt("const BPF_NOEXIST"));
    }
}
