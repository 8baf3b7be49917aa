using System.Diagnostics;
using System.Net;
using PluginHost.Config;
using PluginHost.Datapath;
using PluginHost.Lab;
using PluginHost.TestSupport;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>
/// <see cref="MapReconciler"/>'s write order, proven on real traffic: a route change that replaces prefixes by others
/// covering the same addresses must never leave a moment where none covers a packet's source. A packet that finds no
/// route falls through to the kernel, which routes it out of the other uplink: the wrong path, seen at the server.
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class MakeBeforeBreakLabTests : IDisposable
{
    private const int Pps = 20_000;
    private const int Changes = 50;
    private readonly RouterLab _lab = new("m" + Guid.NewGuid().ToString("N")[..4]);
    private readonly ReloadRig _rig = new();
    private readonly ITestOutputHelper _out;

    public MakeBeforeBreakLabTests(ITestOutputHelper output) => _out = output;

    public void Dispose()
    {
        try
        {
            _rig.Dispose();
        }
        finally
        {
            _lab.Dispose();
        }
    }

    // The client subnet as one /24 or as its two /25s, every route out of uplink 2 (the kernel's route is uplink 1).
    private void WriteRoutes(bool split)
    {
        string[] prefixes = split ? ["198.18.1.0/25", "198.18.1.128/25"] : [RouterLab.ClientNetwork];
        _rig.WriteConfig(_lab.Router.Name, RouterLab.RouterLan, """
                  - plugin: SourcePolicy
                    settings:
                      routes:

            """ + string.Concat(prefixes.Select(p => $"""
                        - from: {p}
                          interface: {RouterLab.RouterUplink2}
                          via: {RouterLab.Uplink2Gateway}

            """)));
    }

    private int ServerIfindex(string name) => int.Parse(_lab.Server.Exec("cat", $"/sys/class/net/{name}/ifindex").Trim());

    [KernelFact]
    public void ASlash24ReplacedByTwoSlash25sAndBackUnderTrafficNeverSendsADatagramTheWrongWay()
    {
        WriteRoutes(split: false);
        var engine = _rig.Engine();
        engine.Apply();
        // Resolve uplink 2's neighbour before the stream: the first datagrams must not wait for ARP.
        UdpTraffic.Send(_lab.Client, RouterLab.ClientSourceA, new IPEndPoint(RouterLab.ServerAddress, 9999), 3);
        Thread.Sleep(200);

        using var udp = UdpStream.Start(_lab.Client, RouterLab.ClientSourceA, _lab.Server,
            new IPEndPoint(RouterLab.ServerAddress, 9100), Pps, trackInterfaces: true);
        Thread.Sleep(300);
        var timings = new List<double>();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < Changes; i++)
        {
            // As an operator does: rewrite the configuration, the host re-reads it (same code: the routes map changes in place).
            WriteRoutes(split: i % 2 == 0);
            engine.Reconfigure(ConfigLoader.Load(_rig.ConfigPath));
            var result = engine.Apply().Single();
            Assert.Equal(ApplyKind.MapsUpdated, result.Kind);
            Assert.Equal(3, result.EntriesChanged); // one /24 against two /25s: writes and deletes in the same change
            timings.Add(result.Total.TotalMilliseconds);
            Thread.Sleep(20); // spread the changes over the stream
        }
        var elapsed = watch.Elapsed;
        Thread.Sleep(300);
        var stream = udp.Stop();
        var arrivals = stream.ArrivalsByInterface;
        long wrongPath = arrivals.GetValueOrDefault(ServerIfindex(RouterLab.ServerUplink1));
        long rightPath = arrivals.GetValueOrDefault(ServerIfindex(RouterLab.ServerUplink2));
        _out.WriteLine($"{Changes} route changes in {elapsed.TotalSeconds:F2} s (apply p50 {timings.Order().ElementAt(timings.Count / 2):F1} ms, " +
                       $"max {timings.Max():F1} ms); sent {stream.Sent}, received {stream.Received}, on up2 {rightPath}, " +
                       $"wrong path (up1) {wrongPath}, lost {stream.Lost}");
        _out.WriteLine($"udp: {stream}");

        Assert.Equal(0, wrongPath);
        Assert.Equal(0, stream.Lost);
        Assert.Equal(stream.Received + stream.Duplicates, rightPath);
        Assert.True(stream.PacketsPerSecond >= Pps * 0.9, $"stream rate {stream.PacketsPerSecond:F0} pps");
    }
}
