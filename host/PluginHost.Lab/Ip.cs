using System.Diagnostics;

namespace PluginHost.Lab;

/// <summary>Runs the iproute2 <c>ip</c> tool without a shell.</summary>
internal static class Ip
{
    /// <summary>How long one <c>ip</c> invocation may take before it is killed.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Runs <c>ip args...</c> and returns its standard output.</summary>
    /// <exception cref="LabException">"run 'ip &lt;args&gt;': &lt;stderr&gt;" when it exits non-zero.</exception>
    public static string Run(params string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        string what = "ip " + string.Join(' ', args);

        var start = new ProcessStartInfo("ip")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            CreateNoWindow = true,
        };
        foreach (string arg in args)
            start.ArgumentList.Add(arg);

        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new LabException($"run '{what}': {e.Message}", e);
        }

        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Timeout))
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit();
            throw new LabException($"run '{what}': timed out after {Timeout.TotalSeconds:0} s");
        }
        process.WaitForExit(); // flushes the redirected streams
        string output = stdout.GetAwaiter().GetResult();
        string error = stderr.GetAwaiter().GetResult().Trim();

        if (process.ExitCode != 0)
            throw new LabException(
                $"run '{what}': {(error.Length > 0 ? error : $"exit code {process.ExitCode}")}");
        return output;
    }
}
