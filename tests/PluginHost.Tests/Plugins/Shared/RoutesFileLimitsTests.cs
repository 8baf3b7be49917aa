using System.Diagnostics;
using PluginHost.Contract;
using PluginHost.Plugins.Shared;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Plugins.Shared;

/// <summary>
/// Issue 11: a routes file is a regular file of bounded size and line length, opened without blocking, and its errors
/// never repeat what it holds.
/// </summary>
[Trait("Category", "Unit")]
public sealed class RoutesFileLimitsTests(SourcePolicyFixture fixture) : IClassFixture<SourcePolicyFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-routes-limits-").FullName;
    private readonly FakeStageContext _context = FakeStageContext.Default();
    private readonly RoutesFileCache _cache = new(RouteFamily.Ipv4, "routes");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static SettingsNode Node(string path) => new("x.routesFile", 3, SettingsKind.Scalar, path);

    private string Only() => Assert.Single(_context.Errors).Message;

    // A FIFO blocked the single writer in open(2) forever: now it is refused at once.
    [Fact]
    public async Task AFifoIsRefusedWithoutBlocking()
    {
        string fifo = Path.Combine(_dir, "routes.fifo");
        Process.Start("mkfifo", [fifo])!.WaitForExit();

        var read = Task.Run(() => _cache.Read(Node(fifo), _context));

        var (table, _) = await read.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Null(table);
        Assert.Equal($"routes file '{fifo}' is a FIFO, not a regular file", Only());
    }

    [Theory]
    [InlineData("/dev/zero", "a character device")]
    [InlineData("/tmp", "a directory")]
    public void AnythingButARegularFileIsRefused(string path, string kind)
    {
        _cache.Read(Node(path), _context);

        Assert.Equal($"routes file '{path}' is {kind}, not a regular file", Only());
    }

    [Fact]
    public void AFileOverTheSizeLimitIsRefusedNamingTheLimit()
    {
        string file = Path.Combine(_dir, "routes.txt");
        File.WriteAllText(file, "198.18.1.0/24 up1\n198.18.2.0/24 up1\n");

        var (table, _) = _cache.Read(Node(file), _context, maxBytes: 20);

        Assert.Null(table);
        Assert.Equal($"routes file '{file}' is 36 bytes, more than the limit of 20 (raise it with routesFileMaxBytes)", Only());
    }

    [Fact]
    public void TheSizeLimitIsASettingOfTheStage()
    {
        string file = Path.Combine(_dir, "routes.txt");
        File.WriteAllText(file, "198.18.1.0/24 up1\n198.18.2.0/24 up1\n");

        var ok = fixture.Plugin.Configure(PluginFixture.Settings("SourcePolicy", $"routesFile: {file}\nroutesFileMaxBytes: 1KiB"), _context);
        Assert.Empty(_context.Errors);
        Assert.Equal(2, Assert.Single(ok.Tables).Count);

        fixture.Plugin.Configure(PluginFixture.Settings("SourcePolicy", $"routesFile: {file}\nroutesFileMaxBytes: 30"), _context);
        Assert.Contains("more than the limit of 30", Only());
        _context.Errors.Clear();

        fixture.Plugin.Configure(PluginFixture.Settings("SourcePolicy", $"routesFile: {file}\nroutesFileMaxBytes: lots"), _context);
        var (node, message) = Assert.Single(_context.Errors);
        Assert.Equal(("pipelines[0].stages[0].settings.routesFileMaxBytes", "expected a size in bytes, or with KiB, MiB or GiB (such as 256MiB), at most 1 TiB"), (node.Path, message));
    }

    // A 50 MB line once cost 3 GB: now it is skipped in 64 KB reads, reported, and the lines around it still parse.
    [Fact]
    public void ALineLongerThanTheLimitIsRefusedWithoutBeingHeld()
    {
        string file = Path.Combine(_dir, "routes.txt");
        using (var w = new StreamWriter(file))
        {
            w.Write("198.18.1.0/24 up1\n");
            var chunk = new string('x', 1 << 20);
            for (int i = 0; i < 50; i++)
                w.Write(chunk);
            w.Write("\n198.18.1.0/24 up2\n");
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        _cache.Read(Node(file), _context);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(2, _context.Errors.Count);
        Assert.Equal($"{file}:2: line longer than 4,096 bytes", _context.Errors[0].Message);
        Assert.Equal($"{file}:3: duplicate prefix 198.18.1.0/24 (first given at line 1)", _context.Errors[1].Message);
        Assert.True(allocated < 4 << 20, $"{allocated:N0} bytes allocated");
    }

    // Errors name the file, the line and the field, never the text: the host reads as root and the error travels to
    // the API, the log and the reload history.
    [Fact]
    public void ErrorsNeverRepeatTheFilesContents()
    {
        string file = Path.Combine(_dir, "shadow");
        File.WriteAllText(file, """
            root:$6$saltsalt$hunter2hash:19000:0:99999:7:::
            hunter2 up1
            10.0.0.0/8 hunter2-if-that-is-too-long
            10.0.0.0/8 up1 hunter2
            password = hunter2
            """);

        _cache.Read(Node(file), _context);

        Assert.Equal(5, _context.Errors.Count);
        Assert.All(_context.Errors, e => Assert.DoesNotContain("hunter2", e.Message));
        Assert.All(_context.Errors, e => Assert.DoesNotContain("$6$", e.Message));
        Assert.Equal($"{file}:1: expected 'PREFIX INTERFACE [VIA]', got 1 field", _context.Errors[0].Message);
        Assert.Equal($"{file}:2: invalid prefix (field 1)", _context.Errors[1].Message);
        Assert.Equal($"{file}:4: invalid next hop (field 3): expected a unicast IPv4 address", _context.Errors[3].Message);
        Assert.Equal($"{file}:5: invalid prefix (field 1)", _context.Errors[4].Message);
    }

    // The host refuses a path outside its allowed directories (UnauthorizedAccessException from ResolvePath): reported at the node.
    [Fact]
    public void APathTheHostRefusesIsReportedAtTheNode()
    {
        var context = new ConfiningContext();

        _cache.Read(Node("/etc/shadow"), context);

        Assert.Equal("routes file /etc/shadow is outside the allowed directories (/etc/ph)", Assert.Single(context.Errors).Message);
    }

    private sealed class ConfiningContext : IStageContext
    {
        public List<(SettingsNode Node, string Message)> Errors { get; } = [];
        public string PipelineName => "test";
        public Direction Direction => Direction.Ingress;

        public bool TryResolveInterface(string name, out int ifindex, out string error)
        {
            (ifindex, error) = (0, "none");
            return false;
        }

        public string ResolvePath(string path) => throw new UnauthorizedAccessException($"{path} is outside the allowed directories (/etc/ph)");

        public void Error(SettingsNode node, string message) => Errors.Add((node, message));
    }
}
