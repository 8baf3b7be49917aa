using PluginHost.TestSupport;
using System.Collections.Concurrent;
using PluginHost.Hosting;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Engine.Hosting;

[Trait("Category", "Unit")]
public sealed class ChangeWatcherTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-watch-").FullName;
    private readonly ConcurrentQueue<Trigger> _triggers = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (string Config, string Plugins) Layout()
    {
        string config = Path.Combine(_dir, "config.yaml");
        File.WriteAllText(config, "pipelines: []\n");
        string plugins = Directory.CreateDirectory(Path.Combine(_dir, "plugins")).FullName;
        return (config, plugins);
    }

    [Fact]
    public void ConfigEditBecomesOneTrigger()
    {
        var (config, plugins) = Layout();
        using var watcher = new ChangeWatcher(config, plugins, _triggers.Enqueue);

        for (int i = 0; i < 20; i++)
            File.AppendAllText(config, $"# edit {i}\n");

        Assert.True(SpinWait.SpinUntil(() => !_triggers.IsEmpty, TimeSpan.FromSeconds(3)));
        Thread.Sleep(ChangeWatcher.Quiet * 2);
        Assert.Single(_triggers);
    }

    [Fact]
    public void HalfWrittenDllIsNotReportedUntilComplete()
    {
        var (config, plugins) = Layout();
        byte[] dll = File.ReadAllBytes(Path.Combine(Repo.PluginsDirectory, "SourcePolicy", "SourcePolicy.dll"));
        string target = Path.Combine(Directory.CreateDirectory(Path.Combine(plugins, "SourcePolicy")).FullName, "SourcePolicy.dll");
        using var watcher = new ChangeWatcher(config, plugins, _triggers.Enqueue);

        using (var stream = new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.Write(dll, 0, dll.Length / 2);
            stream.Flush();
            Thread.Sleep(ChangeWatcher.Quiet * 4); // a slow copy, stalled half-way for longer than the quiet period
            Assert.Empty(_triggers);
            stream.Write(dll, dll.Length / 2, dll.Length - dll.Length / 2);
        }

        Assert.True(SpinWait.SpinUntil(() => !_triggers.IsEmpty, TimeSpan.FromSeconds(5)), "no trigger after the copy completed");
        Assert.Contains("SourcePolicy", Assert.Single(_triggers).Detail);
    }

    // Issue 11: a folder the configuration does not name is never loaded, so a half-written DLL there (a plugin being
    // staged, an unused one) neither triggers a reload nor holds back one for a folder it does name.
    [Fact]
    public void FoldersTheConfigurationDoesNotNameNeitherTriggerNorDelay()
    {
        var (config, plugins) = Layout();
        byte[] dll = File.ReadAllBytes(Path.Combine(Repo.PluginsDirectory, "SourcePolicy", "SourcePolicy.dll"));
        string unnamed = Path.Combine(Directory.CreateDirectory(Path.Combine(plugins, "Staging")).FullName, "Staging.dll");
        string named = Path.Combine(Directory.CreateDirectory(Path.Combine(plugins, "SourcePolicy")).FullName, "SourcePolicy.dll");
        using var watcher = new ChangeWatcher(config, plugins, _triggers.Enqueue, () => ["SourcePolicy"]);

        File.WriteAllBytes(unnamed, dll.AsSpan(0, dll.Length / 2).ToArray()); // half a DLL, and it stays that way
        Thread.Sleep(ChangeWatcher.Quiet * 4);
        Assert.Empty(_triggers);

        File.WriteAllBytes(named, dll);
        Assert.True(SpinWait.SpinUntil(() => !_triggers.IsEmpty, TimeSpan.FromSeconds(5)), "the named folder's change was held back");
        Assert.Contains("SourcePolicy", Assert.Single(_triggers).Detail);
    }
}
