namespace PluginHost.Lab;

/// <summary>
/// A network namespace with a few up interfaces to attach pipelines to and resolve names against:
/// each is a veth whose peer (<c>NAMEp</c>) stays inside, so nothing reaches the root namespace.
/// IPv6 is off so that no router solicitations or MLD reports land on the hooks.
/// </summary>
internal static class InterfaceNamespace
{
    public static NetworkNamespace Create(string name, params string[] interfaces)
    {
        var ns = NetworkNamespace.Create(name);
        try
        {
            ns.Sysctl("net.ipv6.conf.all.disable_ipv6", "1");
            ns.Sysctl("net.ipv6.conf.default.disable_ipv6", "1");
            foreach (var iface in interfaces)
            {
                Ip.Run("-n", ns.Name, "link", "add", iface, "type", "veth", "peer", "name", iface + "p");
                Ip.Run("-n", ns.Name, "link", "set", iface, "up");
                Ip.Run("-n", ns.Name, "link", "set", iface + "p", "up");
            }
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }
}
