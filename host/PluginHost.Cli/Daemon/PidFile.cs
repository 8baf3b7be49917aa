namespace PluginHost.Cli.Daemon;

/// <summary>The running host's pid in the runtime directory; written once the host is fully up.</summary>
internal sealed class PidFile : IDisposable
{
    private readonly string _path;

    private PidFile(string path) => _path = path;

    public static string PathIn(string runtimeDirectory) => Path.Combine(runtimeDirectory, "pluginhost.pid");

    public static PidFile Create(string runtimeDirectory)
    {
        Directory.CreateDirectory(runtimeDirectory);
        string path = PathIn(runtimeDirectory);
        File.WriteAllText(path, Environment.ProcessId.ToString());
        return new PidFile(path);
    }

    /// <summary>Remove the file, unless another host has written its own pid there since.</summary>
    public void Dispose()
    {
        if (File.Exists(_path) && File.ReadAllText(_path).Trim() == Environment.ProcessId.ToString())
            File.Delete(_path);
    }
}
