using System.Diagnostics;
using System.Runtime.InteropServices;

namespace PluginHost.Bench.Setup;

/// <summary>Facts about the machine a run was made on, for the report's header.</summary>
public sealed record Machine(DateTimeOffset Date, string Kernel, string Cpu, int Cpus, long MemoryMiB, string Runtime, string Clang)
{
    public static Machine Describe() => new(
        DateTimeOffset.UtcNow,
        Read("/proc/sys/kernel/osrelease") ?? RuntimeInformation.OSDescription,
        CpuModel(),
        Environment.ProcessorCount,
        TotalMemoryMiB(),
        RuntimeInformation.FrameworkDescription,
        FirstLine("clang-19", "--version") ?? "clang-19 (not found)");

    private static string CpuModel()
    {
        foreach (var line in File.ReadLines("/proc/cpuinfo"))
            if (line.StartsWith("model name", StringComparison.Ordinal) && line.IndexOf(':') is int colon and > 0)
                return line[(colon + 1)..].Trim();
        return "unknown CPU";
    }

    private static long TotalMemoryMiB()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
        return 0;
    }

    private static string? Read(string path) => File.Exists(path) ? File.ReadAllText(path).Trim() : null;

    private static string? FirstLine(string program, string argument)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(program, argument) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return output.Split('\n')[0].Trim();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
