using System.CommandLine;
using Microsoft.Extensions.Logging;
using PluginHost.Config;

namespace PluginHost.Cli.Commands;

/// <summary>Options and helpers shared by the commands.</summary>
internal static class CommonOptions
{
    public static Option<FileInfo> Config(bool required) => new("--config", "-c")
    {
        Description = "The YAML configuration file",
        Required = required,
    };

    public static Option<DirectoryInfo?> RuntimeDirectory() => new("--runtime-dir")
    {
        Description = $"Where a host keeps its state (default: from --config, else {HostConfig.DefaultRuntimeDirectory})",
    };

    public static Option<bool> Json() => new("--json") { Description = "Print JSON for machines" };

    public static Option<string> LogFormat() => new("--log-format")
    {
        Description = "Log format: console or json",
        DefaultValueFactory = _ => "console",
    };

    public static ILoggerFactory Loggers(string format) => LoggerFactory.Create(builder =>
    {
        if (format == "json")
            builder.AddJsonConsole(o => o.UseUtcTimestamp = true);
        else
            builder.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            });
        builder.SetMinimumLevel(LogLevel.Information);
        builder.AddFilter("Microsoft", LogLevel.Warning); // no per-request lines from the API server
    });

    /// <summary>The runtime directory named by --runtime-dir, else by --config, else the default.</summary>
    public static string ResolveRuntimeDirectory(FileInfo? config, DirectoryInfo? runtime)
    {
        if (runtime is not null)
            return runtime.FullName;
        if (config is not null)
            return ConfigLoader.Load(config.FullName).RuntimeDirectory;
        return HostConfig.DefaultRuntimeDirectory;
    }

    /// <summary>
    /// Run a command body, turning expected failures into one clear line on stderr and exit code 1: the host's own
    /// (<see cref="HostException"/>, "verb object: cause") and the operating system's refusals that reach us from .NET
    /// file calls unwrapped (a missing file, no permission as a normal user). Anything else is a bug: stack trace.
    /// </summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is HostException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"pluginhost: {e.Message}");
            return 1;
        }
    }
}
