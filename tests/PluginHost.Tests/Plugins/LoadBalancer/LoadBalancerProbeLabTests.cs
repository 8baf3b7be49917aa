using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using PluginHost.Contract;
using System.Text.Json;
using PluginHost.Compose;
using PluginHost.Control;
using PluginHost.Datapath;
using PluginHost.Hosting;
using PluginHost.Health;
using PluginHost.Lab;
using PluginHost.Observe;
using PluginHost.Runtime;
using PluginHost.TestSupport;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Plugins.LoadBalancer;

/// <summary>
/// LoadBalancer under the real <c>pluginhost run</c>, with real traffic to three backend paths: the router's lan0 ingress
/// spreads 198.18.9.1 over up1, up2 and up3, each a veth to a backend namespace of its own that holds 198.18.9.1 and runs
/// the servers. A long TCP connection stays byte-exact on its backend through a backend add, a weight change and the drain
/// of another backend (no segment of it reaches another backend); a backend whose link goes down is marked down by its
/// ICMP probe within interval × failures + 1 interval, its flows and new flows go to the others, and it is back within
/// interval × successes + 1 interval, taking new flows again.
/// </summary>
[Trait("Category", "Lab")]
[Collection(LabCollection.Name)]
public sealed class LoadBalancerProbeLabTests : IDisposable
{
    private const int IntervalMs = 200, TimeoutMs = 100, Failures = 3, Successes = 2;
    private const int StreamPort = 8080, ConnectPort = 8081, UdpPort = 9000;
    private static readonly IPAddress Service = IPAddress.Parse("198.18.9.1");
    private static readonly IPAddress Client = IPAddress.Parse("198.18.1.2");

    private readonly BackendLab _lab = new("p" + Guid.NewGuid().ToString("N")[..4]);
    private readonly ReloadRig _rig = new();
    private readonly ITestOutputHelper _out;
    private readonly RecordingOutput _log;
    private readonly HostProcesses _hosts;
    private readonly Servers _servers;

    public LoadBalancerProbeLabTests(ITestOutputHelper output)
    {
        _out = output;
        _log = new RecordingOutput(output);
        _hosts = new HostProcesses(_log);
        _servers = new Servers(_lab.Backends);
        _rig.UsePlugin(Path.Combine(Repo.PluginsDirectory, "LoadBalancer"));
    }

    public void Dispose()
    {
        try
        {
            _hosts.Dispose();
            _servers.Dispose();
            _rig.Dispose();
        }
        finally
        {
            _lab.Dispose();
        }
    }

    // Backends a, b (and c when given) on up1..up3, next hop 198.18.N.2, the service's ICMP probe for each.
    private void Start(int backends)
    {
        string list = string.Join("", Enumerable.Range(0, backends).Select(i =>
            $"            - {{ name: {"abc"[i]}, service: svc, interface: up{i + 1}, via: {BackendLab.Gateway(i)} }}\n"));
        _rig.WriteConfig(_lab.Router.Name, BackendLab.RouterLan, $"""
                  - plugin: LoadBalancer
                    settings:
                      services:
                        - name: svc
                          to: {Service}/32
                          probe: {"{"} kind: icmp, interval: {IntervalMs}ms, timeout: {TimeoutMs}ms, failures: {Failures}, successes: {Successes} {"}"}
                      backends:
            {list}
            """);
        _hosts.Start(_rig.ConfigPath);
        HostProcesses.WaitFor(() => ReloadHistory.Load(_rig.RuntimeDirectory).Reloads >= 1, "the host's first apply", TimeSpan.FromSeconds(30));
        HostProcesses.WaitFor(() => States().Count == backends && States().Values.All(s => s == ProbeState.Up), "every probe up", TimeSpan.FromSeconds(5));
    }

    private CommandResult Backend(string verb, params (string Name, string Value)[] args)
    {
        using var client = ControlClient.TryCreate(_rig.RuntimeDirectory)!;
        var result = client.Post("/v1/commands", new CommandRequest("backend", verb, args.ToDictionary(a => a.Name, a => a.Value)))
            .Deserialize<CommandResult>(ControlServer.Json)!;
        _out.WriteLine($"$ backend {verb} {string.Join(' ', args.Select(a => $"--{a.Name} {a.Value}"))}: {result.Message}");
        return result;
    }

    private IReadOnlyList<ProbeStatus> Probes() => ProbeFile.Load(_rig.RuntimeDirectory).GetValueOrDefault("p") ?? [];

    private Dictionary<string, ProbeState> States() => Probes().ToDictionary(p => p.Probe, p => p.State);

    [KernelFact]
    public void ALongTcpConnectionStaysOnItsBackendByteExactThroughAnAddAWeightChangeAndADrain()
    {
        Start(backends: 2);
        using var stream = TcpStream.Start(_lab.Client, Client, _servers.StreamListeners, new IPEndPoint(Service, StreamPort), 400_000);
        int own = stream.AcceptedBy;
        string name = "ab"[own].ToString(), other = "ab"[1 - own].ToString();
        var segments = _lab.TcpSegmentsIn();
        Thread.Sleep(500);

        Assert.Equal(ApplyKind.MapsUpdated, Backend("add", ("name", "c"), ("service", "svc"), ("interface", "up3"), ("via", BackendLab.Gateway(2).ToString())).Applied);
        Thread.Sleep(500);
        // The other backend takes nearly the whole table (1000 to 1): the stream's table entry almost surely names another
        // backend now, so only the flow table can keep it where it is.
        Assert.Equal(ApplyKind.MapsUpdated, Backend("weight", ("name", other), ("weight", "1000")).Applied);
        Thread.Sleep(500);
        Assert.Equal(ApplyKind.MapsUpdated, Backend("drain", ("name", other)).Applied);
        Thread.Sleep(500);
        var result = stream.Stop();
        var after = _lab.TcpSegmentsIn();

        var arrived = Enumerable.Range(0, 3).Select(i => after[i] - segments[i]).ToArray();
        _out.WriteLine($"stream on backend {name}: {result}; TCP segments that reached each backend meanwhile: " +
                       string.Join(", ", arrived.Select((n, i) => $"{"abc"[i]} {n:N0}")));
        Assert.True(result.Ok, result.ToString());
        Assert.True(result.BytesReceived > 500_000, $"{result.BytesReceived} bytes");
        Assert.True(arrived[own] > 100, "the stream's segments reached its backend");
        Assert.All(Enumerable.Range(0, 3).Where(i => i != own), i => Assert.Equal(0, arrived[i])); // not one segment elsewhere
        // c came in by the verb with the service's probe, and took it up.
        HostProcesses.WaitFor(() => States().GetValueOrDefault("c") == ProbeState.Up, "c's probe up", TimeSpan.FromSeconds(3));
    }

    [KernelFact]
    public void ABackendWhoseLinkGoesDownIsProbedDownWithinItsBoundItsFlowsMoveAndItComesBack()
    {
        Start(backends: 3);
        var flows = Enumerable.Range(30000, 60).Select(port => (ushort)port).ToArray();
        var before = _servers.Send(_lab.Client, Client, flows);
        Assert.Equal(flows.Length, before.Count);
        int victim = Enumerable.Range(0, 3).OrderByDescending(i => before.Values.Count(b => b == i)).First(); // the busiest
        Assert.All(Enumerable.Range(0, 3), i => Assert.Contains(i, before.Values));
        string name = "abc"[victim].ToString();

        // The backend's side of its link down: its probe's echoes go nowhere.
        var down = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        Ip.Run("-n", _lab.Backends[victim].Name, "link", "set", BackendLab.BackendLan, "down");
        HostProcesses.WaitFor(() => States()[name] == ProbeState.Down, $"{name}'s probe down", TimeSpan.FromSeconds(5));
        var detected = Probes().Single(p => p.Probe == name).Since - down;
        var statusDown = StatusReport.Status(_rig.RuntimeDirectory).Single().Probes.Single(p => p.Probe == name);
        // Its flows move (the others stay), and new connections go to the others.
        HostProcesses.WaitFor(() => _servers.Send(_lab.Client, Client, flows).Count == flows.Length, $"{name}'s flows answered elsewhere", TimeSpan.FromSeconds(3));
        var moved = clock.Elapsed;
        var during = _servers.Send(_lab.Client, Client, flows);
        Assert.DoesNotContain(victim, during.Values);
        Assert.All(flows.Where(f => before[f] != victim), f => Assert.Equal(before[f], during[f]));
        var refused = _servers.Connect(_lab.Client, Client, 30);
        Assert.Equal(0, refused[victim]);
        Assert.Equal(30, refused.Sum());

        // Link up: the probe is up within its bound, and the backend takes new connections again; moved flows stay where they went.
        var up = DateTimeOffset.UtcNow;
        _lab.LinkUp(victim);
        HostProcesses.WaitFor(() => States()[name] == ProbeState.Up, $"{name}'s probe up", TimeSpan.FromSeconds(5));
        var recovered = Probes().Single(p => p.Probe == name).Since - up;
        int[] back = [];
        HostProcesses.WaitFor(() => (back = _servers.Connect(_lab.Client, Client, 60))[victim] > 0, $"new connections on {name}", TimeSpan.FromSeconds(3));
        Assert.Equal(during, _servers.Send(_lab.Client, Client, flows));

        _out.WriteLine($"backend {name} (of {before.Values.Count(b => b == victim)} of {flows.Length} flows): link down → probe down after {detected.TotalMilliseconds:F0} ms " +
                       $"(bound {(Failures + 1) * IntervalMs} ms), its flows answered elsewhere after {moved.TotalMilliseconds:F0} ms; " +
                       $"link up → probe up after {recovered.TotalMilliseconds:F0} ms (bound {(Successes + 1) * IntervalMs} ms)");
        _out.WriteLine($"status while down: {statusDown.Probe} {statusDown.State} since {statusDown.Since:HH:mm:ss.fff}: {statusDown.LastError}");
        _out.WriteLine($"new connections while down: {string.Join(", ", refused.Select((n, i) => $"{"abc"[i]} {n}"))}; after: {string.Join(", ", back.Select((n, i) => $"{"abc"[i]} {n}"))}");
        Assert.True(detected <= TimeSpan.FromMilliseconds((Failures + 1) * IntervalMs), $"down after {detected.TotalMilliseconds:F0} ms");
        Assert.True(recovered <= TimeSpan.FromMilliseconds((Successes + 1) * IntervalMs), $"up after {recovered.TotalMilliseconds:F0} ms");
        Assert.Equal(ProbeState.Down, statusDown.State);
        Assert.Contains(_log.Lines, l => l.Contains($"probe {name} (icmp {BackendLab.Gateway(victim)} via up{victim + 1}) is down after {Failures} failures in a row"));
        Assert.Contains(_log.Lines, l => l.Contains($"probe {name} (icmp {BackendLab.Gateway(victim)} via up{victim + 1}) is up after {Successes} successes in a row (down for"));
    }

    /// <summary>
    /// Client, router and three backends, IPv4 only: client lan0 198.18.1.2/24 ── router lan0 198.18.1.1/24; router upN
    /// 198.18.(N+1).1/24 ── backend N's lan0 198.18.(N+1).2/24, which also holds 198.18.9.1/32 on lo and routes the client's
    /// network back by the router. The router's own route to 198.18.9.1 is by up1 (what packets passed to the kernel take).
    /// </summary>
    private sealed class BackendLab : IDisposable
    {
        public const string RouterLan = "lan0", BackendLan = "lan0";
        private readonly List<NetworkNamespace> _all = [];

        public BackendLab(string prefix)
        {
            try
            {
                Client = Add($"{prefix}-c");
                Router = Add($"{prefix}-r");
                Backends = [Add($"{prefix}-b1"), Add($"{prefix}-b2"), Add($"{prefix}-b3")];
                foreach (var ns in _all)
                {
                    ns.Sysctl("net.ipv4.conf.all.rp_filter", "0");
                    ns.Sysctl("net.ipv4.conf.default.rp_filter", "0");
                    ns.Sysctl("net.ipv6.conf.all.disable_ipv6", "1");
                    ns.Sysctl("net.ipv6.conf.default.disable_ipv6", "1");
                    Ip.Run("-n", ns.Name, "link", "set", "dev", "lo", "up");
                }
                Router.Sysctl("net.ipv4.ip_forward", "1");
                Ip.Run("link", "add", RouterLan, "netns", Router.Name, "type", "veth", "peer", "name", "lan0", "netns", Client.Name);
                Ip.Run("-n", Client.Name, "addr", "add", "198.18.1.2/24", "dev", "lan0");
                Ip.Run("-n", Client.Name, "link", "set", "lan0", "up");
                Ip.Run("-n", Client.Name, "route", "add", "default", "via", "198.18.1.1");
                Ip.Run("-n", Router.Name, "addr", "add", "198.18.1.1/24", "dev", RouterLan);
                Ip.Run("-n", Router.Name, "link", "set", RouterLan, "up");
                for (int i = 0; i < 3; i++)
                {
                    string up = $"up{i + 1}", b = Backends[i].Name;
                    Ip.Run("link", "add", up, "netns", Router.Name, "type", "veth", "peer", "name", BackendLan, "netns", b);
                    Ip.Run("-n", Router.Name, "addr", "add", $"198.18.{i + 2}.1/24", "dev", up);
                    Ip.Run("-n", Router.Name, "link", "set", up, "up");
                    Ip.Run("-n", b, "addr", "add", $"{Gateway(i)}/24", "dev", BackendLan);
                    Ip.Run("-n", b, "addr", "add", $"{Service}/32", "dev", "lo");
                    LinkUp(i);
                }
                Ip.Run("-n", Router.Name, "route", "add", $"{Service}/32", "via", Gateway(0).ToString());
                WaitUp();
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public NetworkNamespace Client { get; }
        public NetworkNamespace Router { get; }
        public NetworkNamespace[] Backends { get; }

        /// <summary>Backend <paramref name="i"/>'s link up again, with its route back to the client (gone with the link).</summary>
        public void LinkUp(int i)
        {
            Ip.Run("-n", Backends[i].Name, "link", "set", BackendLan, "up");
            Ip.Run("-n", Backends[i].Name, "route", "replace", "198.18.1.0/24", "via", $"198.18.{i + 2}.1");
        }

        /// <summary>Backend <paramref name="i"/>'s address on its link: the router's next hop to it.</summary>
        public static IPAddress Gateway(int i) => IPAddress.Parse($"198.18.{i + 2}.2");

        /// <summary>TCP segments each backend's kernel took in so far (Tcp InSegs: every segment, one it resets too).</summary>
        public long[] TcpSegmentsIn() => [.. Backends.Select(ns =>
        {
            var lines = ns.Exec("cat", "/proc/net/snmp").Split('\n').Where(l => l.StartsWith("Tcp:", StringComparison.Ordinal)).ToArray();
            int at = Array.IndexOf(lines[0].Split(' '), "InSegs");
            return long.Parse(lines[1].Split(' ')[at], System.Globalization.CultureInfo.InvariantCulture);
        })];

        private NetworkNamespace Add(string name)
        {
            var ns = NetworkNamespace.Create(name);
            _all.Add(ns);
            return ns;
        }

        // Carrier follows "link set up" asynchronously; until then a veth drops what it sends.
        private void WaitUp()
        {
            var links = new List<(NetworkNamespace, string)> { (Client, "lan0"), (Router, RouterLan), (Router, "up1"), (Router, "up2"), (Router, "up3") };
            links.AddRange(Backends.Select(b => (b, BackendLan)));
            foreach (var (ns, link) in links)
                HostProcesses.WaitFor(() => ns.Exec("cat", $"/sys/class/net/{link}/operstate").Trim() == "up", $"{link} in {ns.Name} up", TimeSpan.FromSeconds(10));
        }

        public void Dispose()
        {
            foreach (var ns in _all)
                ns.Dispose();
        }
    }

    /// <summary>
    /// What each backend runs on the service address: a listener the long stream may reach (8080), an acceptor that counts
    /// connections (8081), and a UDP socket that records which backend each client port's datagram reached (9000).
    /// </summary>
    private sealed class Servers : IDisposable
    {
        private readonly List<Socket> _sockets = [];
        private readonly List<Thread> _threads = [];
        private readonly int[] _accepted = new int[3];
        private readonly ConcurrentDictionary<ushort, int> _arrivals = new();

        public Servers(NetworkNamespace[] backends)
        {
            StreamListeners = [.. backends.Select(ns => Keep(TcpStream.Listen(ns, new IPEndPoint(Service, StreamPort), backlog: 4)))];
            for (int i = 0; i < backends.Length; i++)
            {
                int backend = i;
                var acceptor = Keep(TcpStream.Listen(backends[i], new IPEndPoint(Service, ConnectPort), backlog: 64));
                var udp = Keep(backends[i].Run(() =>
                {
                    var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                    s.Bind(new IPEndPoint(Service, UdpPort));
                    return s;
                }));
                Loop($"accept b{i + 1}", () => { acceptor.Accept().Dispose(); Interlocked.Increment(ref _accepted[backend]); });
                var buffer = new byte[64];
                Loop($"udp b{i + 1}", () =>
                {
                    EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                    udp.ReceiveFrom(buffer, ref from);
                    _arrivals[(ushort)((IPEndPoint)from).Port] = backend;
                });
            }
        }

        public Socket[] StreamListeners { get; }

        /// <summary>One datagram from each client port; which backend each reached (ports whose datagram was lost are left out).</summary>
        public Dictionary<ushort, int> Send(NetworkNamespace client, IPAddress source, ushort[] ports)
        {
            _arrivals.Clear();
            client.Run(() =>
            {
                foreach (ushort port in ports)
                {
                    using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                    s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                    s.Bind(new IPEndPoint(source, port));
                    s.SendTo(new byte[16], new IPEndPoint(Service, UdpPort));
                }
            });
            SpinWait.SpinUntil(() => _arrivals.Count == ports.Length, TimeSpan.FromMilliseconds(300));
            return new Dictionary<ushort, int>(_arrivals);
        }

        /// <summary>New TCP connections (each from a new port), one second each at most: how many each backend accepted.</summary>
        public int[] Connect(NetworkNamespace client, IPAddress source, int count)
        {
            var before = (int[])_accepted.Clone();
            client.Run(() =>
            {
                for (int i = 0; i < count; i++)
                {
                    using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { SendTimeout = 1000 };
                    s.Bind(new IPEndPoint(source, 0));
                    try
                    {
                        s.Connect(new IPEndPoint(Service, ConnectPort));
                    }
                    catch (SocketException)
                    {
                        // counted as accepted by none
                    }
                }
            });
            SpinWait.SpinUntil(() => Enumerable.Range(0, 3).Sum(i => Volatile.Read(ref _accepted[i])) - before.Sum() >= count, TimeSpan.FromMilliseconds(300));
            return [.. Enumerable.Range(0, 3).Select(i => Volatile.Read(ref _accepted[i]) - before[i])];
        }

        private Socket Keep(Socket s)
        {
            _sockets.Add(s);
            return s;
        }

        private void Loop(string name, Action once)
        {
            var thread = new Thread(() =>
            {
                try
                {
                    while (true)
                        once();
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    // closed: the test is over
                }
            }) { IsBackground = true, Name = name };
            thread.Start();
            _threads.Add(thread);
        }

        public void Dispose()
        {
            foreach (var s in _sockets)
                s.Dispose();
            foreach (var t in _threads)
                t.Join(TimeSpan.FromSeconds(2));
        }
    }
}
