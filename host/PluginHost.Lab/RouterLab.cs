using System.Net;

namespace PluginHost.Lab;

/// <summary>
/// The demo topology: three namespaces joined by veth pairs created directly between them,
/// so nothing appears in the root namespace. All addresses are in 198.18.0.0/15.
/// <code>
///  client                      router                           server
///  lan0 198.18.1.2/24  ──── lan0 198.18.1.1/24
///       198.18.1.10/24         up1  198.18.2.1/24 ──── up1 198.18.2.2/24
///       198.18.1.20/24         up2  198.18.3.1/24 ──── up2 198.18.3.2/24
///  default via .1.1            198.18.9.0/24 via 2.2           lo 198.18.9.1/32
///                              ip_forward=1                    198.18.1.0/24 via 2.1
/// </code>
/// rp_filter is 0 everywhere (the server must accept client traffic arriving by up2). IPv6 is disabled
/// on every lab interface, so counters show only the test's IPv4 traffic (and ARP), unless the lab is
/// built with <c>ipv6: true</c>: then the same links also carry 2001:db8:1::/64 (client), 2001:db8:2::/64
/// and 2001:db8:3::/64 (uplinks) and the server's 2001:db8:9::1/128, with static addresses (no DAD, no
/// router advertisements) and the same routes; neighbour discovery and MLD then add a few packets to the counters.
/// </summary>
public sealed class RouterLab : IDisposable
{
    public const string ClientLan = "lan0";
    public const string RouterLan = "lan0";
    public const string RouterUplink1 = "up1";
    public const string RouterUplink2 = "up2";
    public const string ServerUplink1 = "up1";
    public const string ServerUplink2 = "up2";

    public static readonly IPAddress ClientPrimary = IPAddress.Parse("198.18.1.2");
    public static readonly IPAddress ClientSourceA = IPAddress.Parse("198.18.1.10");
    public static readonly IPAddress ClientSourceB = IPAddress.Parse("198.18.1.20");
    public static readonly IPAddress RouterLanAddress = IPAddress.Parse("198.18.1.1");
    public static readonly IPAddress RouterUplink1Address = IPAddress.Parse("198.18.2.1");
    public static readonly IPAddress RouterUplink2Address = IPAddress.Parse("198.18.3.1");
    public static readonly IPAddress Uplink1Gateway = IPAddress.Parse("198.18.2.2");
    public static readonly IPAddress Uplink2Gateway = IPAddress.Parse("198.18.3.2");
    public static readonly IPAddress ServerAddress = IPAddress.Parse("198.18.9.1");

    // IPv6 (labs built with ipv6: true), the same plan as IPv4.
    public static readonly IPAddress ClientPrimary6 = IPAddress.Parse("2001:db8:1::2");
    public static readonly IPAddress ClientSourceA6 = IPAddress.Parse("2001:db8:1::10");
    public static readonly IPAddress ClientSourceB6 = IPAddress.Parse("2001:db8:1::20");
    public static readonly IPAddress RouterLanAddress6 = IPAddress.Parse("2001:db8:1::1");
    public static readonly IPAddress RouterUplink1Address6 = IPAddress.Parse("2001:db8:2::1");
    public static readonly IPAddress RouterUplink2Address6 = IPAddress.Parse("2001:db8:3::1");
    public static readonly IPAddress Uplink1Gateway6 = IPAddress.Parse("2001:db8:2::2");
    public static readonly IPAddress Uplink2Gateway6 = IPAddress.Parse("2001:db8:3::2");
    public static readonly IPAddress ServerAddress6 = IPAddress.Parse("2001:db8:9::1");

    /// <summary>The server's address in the family of <paramref name="source"/>.</summary>
    public static IPAddress ServerAddressFor(IPAddress source) =>
        source.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? ServerAddress6 : ServerAddress;

    /// <summary>The client subnet (198.18.1.0/24) and the server's service subnet (198.18.9.0/24).</summary>
    public const string ClientNetwork = "198.18.1.0/24";
    public const string ServerNetwork = "198.18.9.0/24";

    /// <summary>Longest prefix that keeps names short (<c>{prefix}-client</c>).</summary>
    public const int MaxPrefixLength = 5;

    private readonly List<NetworkNamespace> _created = new();
    private int _disposed;

    /// <summary>Builds the lab; <paramref name="prefix"/> (≤5 chars: letters, digits, '-') tags the namespace names.</summary>
    /// <param name="ipv6">Also address and route IPv6 (otherwise IPv6 is disabled on every lab interface).</param>
    public RouterLab(string prefix, bool ipv6 = false)
    {
        Ipv6 = ipv6;
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        if (prefix.Length > MaxPrefixLength || !prefix.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            throw new ArgumentException(
                $"lab prefix '{prefix}' must be 1-{MaxPrefixLength} ASCII letters, digits or '-'", nameof(prefix));
        Prefix = prefix;

        try
        {
            Client = Track(NetworkNamespace.Create($"{prefix}-client"));
            Router = Track(NetworkNamespace.Create($"{prefix}-router"));
            Server = Track(NetworkNamespace.Create($"{prefix}-server"));
            Build();
        }
        catch
        {
            RemoveAll();
            throw;
        }
    }

    public string Prefix { get; }

    /// <summary>Whether the lab carries IPv6 too.</summary>
    public bool Ipv6 { get; }
    public NetworkNamespace Client { get; } = null!;
    public NetworkNamespace Router { get; } = null!;
    public NetworkNamespace Server { get; } = null!;

    /// <summary>Client, router, server.</summary>
    public IReadOnlyList<NetworkNamespace> Namespaces => [Client, Router, Server];

    /// <summary>Deletes the three namespaces (and with them every veth). Never throws.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        RemoveAll();
    }

    private NetworkNamespace Track(NetworkNamespace ns)
    {
        _created.Add(ns);
        return ns;
    }

    private void RemoveAll()
    {
        foreach (NetworkNamespace ns in _created)
            ns.Dispose();
    }

    private void Build()
    {
        // Defaults first: interfaces created afterwards inherit conf/default.
        foreach (NetworkNamespace ns in Namespaces)
        {
            ns.Sysctl("net.ipv4.conf.all.rp_filter", "0");
            ns.Sysctl("net.ipv4.conf.default.rp_filter", "0");
            if (Ipv6)
            {
                // Static addresses only: no DAD delay before an address is usable, no autoconfiguration.
                ns.Sysctl("net.ipv6.conf.all.accept_dad", "0");
                ns.Sysctl("net.ipv6.conf.default.accept_dad", "0");
                ns.Sysctl("net.ipv6.conf.all.accept_ra", "0");
                ns.Sysctl("net.ipv6.conf.default.accept_ra", "0");
            }
            else if (ns.Run(() => Directory.Exists("/proc/sys/net/ipv6")))
            {
                // No router solicitations, DAD, or MLD reports in the counters.
                ns.Sysctl("net.ipv6.conf.all.disable_ipv6", "1");
                ns.Sysctl("net.ipv6.conf.default.disable_ipv6", "1");
            }
            Ip.Run("-n", ns.Name, "link", "set", "dev", "lo", "up");
        }
        Router.Sysctl("net.ipv4.ip_forward", "1");

        // Veth pairs born inside their namespaces: nothing shows up in the root namespace.
        Veth(Client, ClientLan, Router, RouterLan);
        Veth(Router, RouterUplink1, Server, ServerUplink1);
        Veth(Router, RouterUplink2, Server, ServerUplink2);

        // Client.
        Address(Client, ClientLan, ClientPrimary, 24);
        Address(Client, ClientLan, ClientSourceA, 24);
        Address(Client, ClientLan, ClientSourceB, 24);
        Up(Client, ClientLan);
        Ip.Run("-n", Client.Name, "route", "add", "default", "via", RouterLanAddress.ToString(), "dev", ClientLan);

        // Router.
        Address(Router, RouterLan, RouterLanAddress, 24);
        Address(Router, RouterUplink1, RouterUplink1Address, 24);
        Address(Router, RouterUplink2, RouterUplink2Address, 24);
        foreach (string ifname in new[] { RouterLan, RouterUplink1, RouterUplink2 })
        {
            Router.Sysctl($"net/ipv4/conf/{ifname}/rp_filter", "0");
            Up(Router, ifname);
        }
        Ip.Run("-n", Router.Name, "route", "add", ServerNetwork,
            "via", Uplink1Gateway.ToString(), "dev", RouterUplink1);

        // Server.
        Address(Server, ServerUplink1, Uplink1Gateway, 24);
        Address(Server, ServerUplink2, Uplink2Gateway, 24);
        Address(Server, "lo", ServerAddress, 32);
        foreach (string ifname in new[] { ServerUplink1, ServerUplink2, "lo" })
            Server.Sysctl($"net/ipv4/conf/{ifname}/rp_filter", "0");
        Up(Server, ServerUplink1);
        Up(Server, ServerUplink2);
        Ip.Run("-n", Server.Name, "route", "add", ClientNetwork,
            "via", RouterUplink1Address.ToString(), "dev", ServerUplink1);

        Client.Sysctl($"net/ipv4/conf/{ClientLan}/rp_filter", "0");
        if (Ipv6)
            BuildIpv6();

        // Carrier and operstate follow "link set up" asynchronously (linkwatch, up to ~1 s); until then
        // the device still has its noop qdisc and drops what it transmits. Return a lab that forwards.
        var deadline = DateTime.UtcNow + LinkUpTimeout;
        WaitUntilUp(Client, ClientLan, deadline);
        foreach (string ifname in new[] { RouterLan, RouterUplink1, RouterUplink2 })
            WaitUntilUp(Router, ifname, deadline);
        WaitUntilUp(Server, ServerUplink1, deadline);
        WaitUntilUp(Server, ServerUplink2, deadline);
    }

    private void BuildIpv6()
    {
        Router.Sysctl("net.ipv6.conf.all.forwarding", "1");
        Address(Client, ClientLan, ClientPrimary6, 64);
        Address(Client, ClientLan, ClientSourceA6, 64);
        Address(Client, ClientLan, ClientSourceB6, 64);
        Ip.Run("-n", Client.Name, "-6", "route", "add", "default", "via", RouterLanAddress6.ToString(), "dev", ClientLan);
        Address(Router, RouterLan, RouterLanAddress6, 64);
        Address(Router, RouterUplink1, RouterUplink1Address6, 64);
        Address(Router, RouterUplink2, RouterUplink2Address6, 64);
        Ip.Run("-n", Router.Name, "-6", "route", "add", ServerNetwork6, "via", Uplink1Gateway6.ToString(), "dev", RouterUplink1);
        Address(Server, ServerUplink1, Uplink1Gateway6, 64);
        Address(Server, ServerUplink2, Uplink2Gateway6, 64);
        Address(Server, "lo", ServerAddress6, 128);
        Ip.Run("-n", Server.Name, "-6", "route", "add", ClientNetwork6, "via", RouterUplink1Address6.ToString(), "dev", ServerUplink1);
    }

    /// <summary>The IPv6 client subnet and the server's IPv6 service subnet.</summary>
    public const string ClientNetwork6 = "2001:db8:1::/64";
    public const string ServerNetwork6 = "2001:db8:9::/64";

    private static readonly TimeSpan LinkUpTimeout = TimeSpan.FromSeconds(10);

    private static void WaitUntilUp(NetworkNamespace ns, string ifname, DateTime deadline)
    {
        while (true)
        {
            string state = OperState(ns, ifname);
            if (state == "UP")
                return;
            if (DateTime.UtcNow >= deadline)
                throw new LabException(
                    $"wait for {ifname} in netns {ns.Name} to come up: operstate still {state}");
            Thread.Sleep(20);
        }
    }

    private static string OperState(NetworkNamespace ns, string ifname)
    {
        string json = Ip.Run("-n", ns.Name, "-j", "link", "show", "dev", ifname);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        return doc.RootElement[0].TryGetProperty("operstate", out var state) ? state.GetString() ?? "" : "";
    }

    private static void Veth(NetworkNamespace a, string aName, NetworkNamespace b, string bName) =>
        Ip.Run("link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name);

    private static void Address(NetworkNamespace ns, string ifname, IPAddress address, int prefixLength) =>
        Ip.Run("-n", ns.Name, "addr", "add", $"{address}/{prefixLength}", "dev", ifname);

    private static void Up(NetworkNamespace ns, string ifname) =>
        Ip.Run("-n", ns.Name, "link", "set", "dev", ifname, "up");
}
