using System.Net;
using PluginHost.Lab;
using PluginHost.Tests.Support;
using Xunit;

namespace PluginHost.Tests.Lab;

/// <summary>Builds the three-namespace demo lab (needs root) and checks plain kernel routing through it.</summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class RouterLabTests
{
    private const int Port = 9000;
    private const int PerSource = 100;

    /// <summary>A 5-char tag unique to this run, so parallel runs never share namespaces.</summary>
    private static string UniquePrefix() => "t" + Guid.NewGuid().ToString("N")[..4];

    [KernelFact]
    public void KernelRoutesClientTrafficThroughUplink1()
    {
        using var lab = new RouterLab(UniquePrefix());
        var destination = new IPEndPoint(RouterLab.ServerAddress, Port);

        var up1Before = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink1);
        var up2Before = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink2);

        using var receiver = UdpReceiver.Start(lab.Server, destination);
        int sentA = UdpTraffic.Send(lab.Client, RouterLab.ClientSourceA, destination, PerSource);
        int sentB = UdpTraffic.Send(lab.Client, RouterLab.ClientSourceB, destination, PerSource);
        receiver.WaitFor(2 * PerSource, TimeSpan.FromSeconds(5));
        Dictionary<IPAddress, int> received = receiver.Stop();

        Assert.Equal(PerSource, sentA);
        Assert.Equal(PerSource, sentB);
        Assert.Equal(PerSource, received.GetValueOrDefault(RouterLab.ClientSourceA));
        Assert.Equal(PerSource, received.GetValueOrDefault(RouterLab.ClientSourceB));
        Assert.Equal(2 * PerSource, received.Values.Sum());

        var up1After = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink1);
        var up2After = InterfaceCounters.Read(lab.Server, RouterLab.ServerUplink2);
        Assert.True(up1After.RxPackets - up1Before.RxPackets >= 2 * PerSource,
            $"server up1 rx grew by {up1After.RxPackets - up1Before.RxPackets}, expected >= {2 * PerSource}");
        Assert.True(up2After.RxPackets - up2Before.RxPackets < 10,
            $"server up2 rx grew by {up2After.RxPackets - up2Before.RxPackets}, expected < 10");
    }

    [KernelFact]
    public void DisposeRemovesEveryNamespace()
    {
        string prefix = UniquePrefix();
        var lab = new RouterLab(prefix);
        string[] names = lab.Namespaces.Select(ns => ns.Name).ToArray();
        Assert.All(names, name => Assert.Contains(name, NamespaceNames()));

        lab.Dispose();
        lab.Dispose(); // idempotent, never throws

        string[] left = NamespaceNames();
        Assert.DoesNotContain(left, name => name.StartsWith(prefix + "-", StringComparison.Ordinal));
    }

    [KernelFact]
    public void RunJoinsTheNamespaceOnlyOnItsOwnThread()
    {
        using var lab = new RouterLab(UniquePrefix());
        // /proc/sys/net follows the calling thread's namespace: forwarding is on in the router only.
        Assert.Equal("1", lab.Router.ReadSysctl("net.ipv4.ip_forward"));
        Assert.Equal("0", lab.Client.ReadSysctl("net.ipv4.ip_forward"));
        Assert.Equal("1", lab.Router.Exec("sysctl", "-n", "net.ipv4.ip_forward").Trim());

        // The lab interfaces exist inside the namespace; only the dedicated thread joined it.
        Assert.True(lab.Server.Run(() => Directory.Exists("/proc/sys/net/ipv4/conf/up2")));
        string callerNs = NetnsOf("/proc/thread-self/ns/net");
        string insideThread = lab.Server.Run(() => NetnsOf("/proc/thread-self/ns/net"));
        string insideProcess = lab.Server.Run(() => NetnsOf("/proc/self/ns/net"));
        Assert.NotEqual(callerNs, insideThread);
        Assert.Equal(callerNs, insideProcess); // /proc/self is the process, not the thread
        Assert.Equal(callerNs, NetnsOf("/proc/thread-self/ns/net"));

        var failure = Assert.Throws<InvalidOperationException>(() => lab.Client.Run(() => throw new InvalidOperationException("inside")));
        Assert.Equal("inside", failure.Message);
    }

    private static string NetnsOf(string link) => new FileInfo(link).LinkTarget ?? "";

    private static string[] NamespaceNames() =>
        Ip.Run("netns", "list")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ')[0])
            .ToArray();
}
