using PluginHost.Datapath;
using PluginHost.Hosting;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>Issue 11: state, reload history and the runtime overlay are root's alone (0600), from the moment they exist.</summary>
[Trait("Category", "Unit")]
public sealed class PrivateFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-private-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public void AFileIsCreatedPrivateEvenOverALeftoverTemporaryFile()
    {
        string path = Path.Combine(_dir, "x.json");
        File.WriteAllText(path + ".tmp", "left by a crash");
        File.SetUnixFileMode(path + ".tmp", (UnixFileMode)0b110_100_100);
        File.WriteAllText(path, "old");
        File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);

        PrivateFile.WriteAllText(path, "new");

        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal(Private, File.GetUnixFileMode(path));
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void TheReloadHistoryIsPrivateAndItsErrorBounded()
    {
        var history = ReloadHistory.Load(_dir).Failed("validate configuration: 1 problem: '" + new string('s', 100_000) + "'");
        history.Save(_dir);

        Assert.Equal(Private, File.GetUnixFileMode(ReloadHistory.FilePath(_dir)));
        Assert.True(ReloadHistory.Load(_dir).LastFailure!.Length < 1_000);
    }

    [Fact]
    public void PipelineStateIsPrivate()
    {
        new PipelineState("p", "eth0", null, "ingress", 2, 1, "/sys/fs/bpf/x/p", "/sys/fs/bpf/x/p/g1", DateTimeOffset.UnixEpoch, [], "key", [],
            PluginHost.Observe.CounterTotals.Empty(), []).Save(_dir);

        Assert.Equal(Private, File.GetUnixFileMode(PipelineState.FilePath(_dir, "p")));
        Assert.Equal("key", PipelineState.Load(_dir, "p")!.CodeKey);
    }

    [Fact]
    public void TheRuntimeOverlayIsPrivate()
    {
        string path = Path.Combine(_dir, "config.yaml.runtime.json");
        PluginHost.Runtime.RuntimeOverlay.Empty.With("p", "SourcePolicy-0", "routes", "from", "10.0.0.0/8", new() { ["from"] = "10.0.0.0/8" }).Save(path);

        Assert.Equal(Private, File.GetUnixFileMode(path));
    }
}
