using System.Globalization;
using System.Net;
using PluginHost.Contract;
using PluginHost.Plugins.LoadBalancer.Maglev;
using PluginHost.Plugins.Shared;

namespace PluginHost.Plugins.LoadBalancer;

/// <summary>What a stage's settings say: its services with their backends (and tables), and the flow table's size.</summary>
internal sealed record LoadBalancerSettings(List<Service> Services, int FlowTableSize);

/// <summary>
/// Reads a stage's settings, reporting every problem at its field. The services' own <c>nexthops</c> and the top-level
/// <c>backends</c> (each naming its service) are one set; <c>weights</c>, <c>drain</c> and <c>down</c> then change
/// backends by name. Each of those is a list the host's runtime verbs edit by key (one list a verb).
/// </summary>
internal static class SettingsParser
{
    private static readonly Dictionary<string, byte> Protocols = new(StringComparer.OrdinalIgnoreCase) { ["tcp"] = 6, ["udp"] = 17, ["sctp"] = 132 };

    public static readonly string[] Keys = ["services", "backends", "weights", "drain", "down", "flowTableSize"];

    public static LoadBalancerSettings Parse(SettingsNode settings, IStageContext context)
    {
        var services = new List<Service>();
        int flowTableSize = LoadBalancerPlugin.DefaultFlowTableSize;
        if (settings.IsMissing)
            return new LoadBalancerSettings(services, flowTableSize);
        if (settings.Kind != SettingsKind.Mapping)
        {
            context.Error(settings, "expected a mapping with 'services' (and optionally 'backends', 'weights', 'drain', 'down', 'flowTableSize')");
            return new LoadBalancerSettings(services, flowTableSize);
        }
        settings.RejectUnknownKeys(context, Keys);
        bool ok = true;
        var sizeNode = settings["flowTableSize"];
        if (!sizeNode.IsMissing && (!int.TryParse(sizeNode.Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out flowTableSize)
                                    || flowTableSize < LoadBalancerPlugin.MinFlowTableSize || flowTableSize > LoadBalancerPlugin.MaxFlowTableSize))
        {
            context.Error(sizeNode, $"invalid flow table size '{sizeNode.Scalar}': expected a whole number from {LoadBalancerPlugin.MinFlowTableSize:N0} to {LoadBalancerPlugin.MaxFlowTableSize:N0} (flows remembered; the least recently used go first)");
            flowTableSize = LoadBalancerPlugin.DefaultFlowTableSize;
            ok = false;
        }

        var list = List(settings, "services", context, ref ok);
        if (list.Count > LoadBalancerPlugin.MaxServices)
        {
            context.Error(settings["services"], $"{list.Count} services: at most {LoadBalancerPlugin.MaxServices} per stage");
            ok = false;
        }
        var seen = new Dictionary<(bool, UInt128, int, byte?, ushort?), string>();
        foreach (var node in list.Take(LoadBalancerPlugin.MaxServices))
        {
            if (ParseService(node, context) is not { } service)
            {
                ok = false;
                continue;
            }
            if (!seen.TryAdd((service.V6, service.Network, service.Length, service.Protocol, service.Port), node.Path))
            {
                context.Error(node["to"], $"duplicate service {service.Text} (first given at {seen[(service.V6, service.Network, service.Length, service.Protocol, service.Port)]})");
                ok = false;
                continue;
            }
            services.Add(service);
        }
        ok &= NameServices(services, context);
        ok &= ParseBackends(settings, services, context);
        ok &= NameBackends(services, context);
        var byName = services.SelectMany(s => s.Backends).DistinctBy(b => b.Name).ToDictionary(b => b.Name);
        ok &= ApplyWeights(settings, byName, context);
        ok &= ApplyNames(settings, "drain", byName, context, b => b.Drained = true);
        ok &= ApplyNames(settings, "down", byName, context, b => b.Down = true);
        ok &= ApplyProbes(services, context);
        ok &= ok && BuildTables(services, context);
        ok &= CheckIdentities(services, settings, context);
        return new LoadBalancerSettings(ok ? services : [], flowTableSize);
    }

    private static IReadOnlyList<SettingsNode> List(SettingsNode settings, string key, IStageContext context, ref bool ok)
    {
        var list = settings[key];
        if (list.IsMissing)
            return [];
        if (list.Kind == SettingsKind.Sequence)
            return list.Items;
        context.Error(list, $"expected a list of {key}");
        ok = false;
        return [];
    }

    private static bool ValidName(SettingsNode node, IStageContext context, string what)
    {
        string name = node.Scalar ?? "";
        if (name.Length is > 0 and <= 48 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':' or '@' or '/'))
            return true;
        context.Error(node, $"invalid {what} name '{name}': 1 to 48 letters, digits, '-', '_', '.', ':', '@' or '/'");
        return false;
    }

    private static Service? ParseService(SettingsNode node, IStageContext context)
    {
        if (node.Kind != SettingsKind.Mapping)
        {
            context.Error(node, "expected a service with 'to' and optionally 'name', 'protocol', 'port', 'hash', 'tableSize', 'probe' and 'nexthops'");
            return null;
        }
        node.RejectUnknownKeys(context, "name", "to", "protocol", "port", "hash", "tableSize", "probe", "nexthops");
        bool ok = node["name"].IsMissing || ValidName(node["name"], context, "service");
        bool v6 = false;
        UInt128 network = 0;
        int length = 0;
        var to = node["to"];
        if (to.IsMissing)
        {
            context.Error(to, "missing destination prefix (e.g. 198.18.9.0/24 or 2001:db8:9::/48)");
            ok = false;
        }
        else if (to.Scalar is { } text && text.Contains(':'))
        {
            v6 = true;
            if (Prefixes.Ipv6Problem(text, "expected an IPv4 or IPv6 CIDR such as 198.18.9.0/24 or 2001:db8:9::/48", out network, out length) is { } problem)
            {
                context.Error(to, problem);
                ok = false;
            }
            else if (Ipv6Text.WithinScoped(network, length))
            {
                context.Error(to, $"invalid prefix '{text}': link-local, multicast and unspecified destinations are never forwarded");
                ok = false;
            }
        }
        else
        {
            ok &= Prefixes.TryParseIpv4(to, context, "expected an IPv4 or IPv6 CIDR such as 198.18.9.0/24 or 2001:db8:9::/48", out uint network4, out length);
            network = network4;
        }
        byte? protocol = null;
        var protoNode = node["protocol"];
        if (!protoNode.IsMissing)
        {
            string text = protoNode.Scalar ?? "";
            if (Protocols.TryGetValue(text, out byte p) || byte.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out p))
                protocol = p;
            else
            {
                context.Error(protoNode, $"invalid protocol '{text}': expected tcp, udp, sctp or a number 0-255");
                ok = false;
            }
        }
        ushort? port = null;
        var portNode = node["port"];
        if (!portNode.IsMissing)
        {
            if (!ushort.TryParse(portNode.Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out ushort d) || d == 0)
            {
                context.Error(portNode, $"invalid port '{portNode.Scalar}': expected a destination port from 1 to 65535");
                ok = false;
            }
            else if (protocol is { } p && p is not (6 or 17 or 132))
            {
                context.Error(portNode, $"a port needs protocol tcp, udp or sctp (or none), not {Service.ProtocolName(p)}");
                ok = false;
            }
            else
                port = d;
        }
        var hash = node["hash"];
        if (!hash.IsMissing && hash.Scalar is not ("flow" or "source"))
        {
            context.Error(hash, $"invalid hash '{hash.Scalar}': expected flow (addresses, protocol and ports) or source (the source address alone)");
            ok = false;
        }
        int? tableSize = null;
        var sizeNode = node["tableSize"];
        if (!sizeNode.IsMissing)
        {
            if (int.TryParse(sizeNode.Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out int size) && size <= LoadBalancerPlugin.MaxTableSize && MaglevTable.IsPrime(size))
                tableSize = size;
            else
            {
                context.Error(sizeNode, $"invalid table size '{sizeNode.Scalar}': expected a prime up to {LoadBalancerPlugin.MaxTableSize:N0} (at least 64 entries per next hop), such as 1021, 4093, 16381 or 65537");
                ok = false;
            }
        }
        BackendProbe? probe = null;
        if (!node["probe"].IsMissing && !ProbeSettings.TryParse(node["probe"], context, out probe))
            ok = false;
        var service = new Service(node["name"].IsMissing ? null : node["name"].Scalar, v6, network, length, protocol, port, hash.Scalar == "source", tableSize, node)
        {
            Probe = probe,
        };
        var hops = node["nexthops"];
        if (!hops.IsMissing && hops.Kind != SettingsKind.Sequence)
        {
            context.Error(hops, $"expected a list of next hops (up to {LoadBalancerPlugin.MaxNextHops}), each with 'interface' and optionally 'name', 'via' and 'weight'");
            return null;
        }
        var hopPaths = new Dictionary<(string, UInt128), string>();
        foreach (var hop in hops.Items)
        {
            if (ParseBackend(hop, v6, ok && !to.IsMissing, inline: true, context) is not { } b)
            {
                ok = false;
                continue;
            }
            ok &= Join(service, b, hop, hopPaths, context);
        }
        return ok ? service : null;
    }

    // A backend joins its service: one path (interface and via) once a service, at most MaxNextHops.
    private static bool Join(Service service, Backend b, SettingsNode node, Dictionary<(string, UInt128), string> paths, IStageContext context)
    {
        if (!paths.TryAdd((b.Interface, b.Via), node.Path))
        {
            context.Error(node, $"duplicate next hop of service {service.Text} (same interface and via as {paths[(b.Interface, b.Via)]})");
            return false;
        }
        if (service.Backends.Count == LoadBalancerPlugin.MaxNextHops)
        {
            context.Error(node, $"service {service.Text}: at most {LoadBalancerPlugin.MaxNextHops} next hops");
            return false;
        }
        b.Service = service;
        service.Backends.Add(b);
        return true;
    }

    // familyKnown: the service's prefix parsed, so a next hop of the other family can be refused at its via.
    private static Backend? ParseBackend(SettingsNode hop, bool v6, bool familyKnown, bool inline, IStageContext context)
    {
        string fields = inline ? "'interface' and optionally 'name', 'via', 'weight' and 'probe'" : "'name', 'service', 'interface' and optionally 'via', 'weight' and 'probe'";
        if (hop.Kind != SettingsKind.Mapping)
        {
            context.Error(hop, $"expected a next hop with {fields}");
            return null;
        }
        if (inline)
            hop.RejectUnknownKeys(context, "name", "interface", "via", "weight", "probe");
        else
            hop.RejectUnknownKeys(context, "name", "service", "interface", "via", "weight", "probe");
        bool ok = hop["name"].IsMissing || ValidName(hop["name"], context, "backend");
        var viaNode = hop["via"];
        UInt128 via = 0;
        IPAddress? viaAddress = null;
        if (!viaNode.IsMissing)
        {
            string text = viaNode.Scalar ?? "";
            bool textV6 = text.Contains(':');
            if (familyKnown && textV6 != v6)
            {
                context.Error(viaNode, $"next hop '{text}' is {(textV6 ? "IPv6" : "IPv4")} but the service is {(v6 ? "IPv6" : "IPv4")} (one family per service)");
                ok = false;
            }
            else if (textV6)
            {
                if (NextHops.Ipv6Problem(text, out via) is { } problem)
                {
                    context.Error(viaNode, problem);
                    ok = false;
                }
                else
                    viaAddress = Ipv6Text.ToAddress(via);
            }
            else if (NextHops.TryParseIpv4(viaNode, context, out uint via4))
            {
                via = via4;
                viaAddress = Ipv4Text.ToAddress(via4);
            }
            else
                ok = false;
        }
        int ifindex = 0;
        ok = ok && Interfaces.TryResolve(context, hop["interface"], viaAddress, viaNode, out ifindex);
        int weight = 1;
        if (!hop["weight"].IsMissing && !TryWeight(hop["weight"], context, out weight))
            ok = false;
        BackendProbe? probe = null;
        if (!hop["probe"].IsMissing && !ProbeSettings.TryParse(hop["probe"], context, out probe))
            ok = false;
        return ok ? new Backend(hop["name"].IsMissing ? null : hop["name"].Scalar, hop["interface"].Scalar!, ifindex, via, weight, hop)
            { ProbeGiven = !hop["probe"].IsMissing, Probe = probe } : null;
    }

    private static bool TryWeight(SettingsNode node, IStageContext context, out int weight)
    {
        if (int.TryParse(node.Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out weight) && weight <= LoadBalancerPlugin.MaxWeight)
            return true;
        context.Error(node, $"invalid weight '{node.Scalar}': expected a whole number from 0 (drained) to {LoadBalancerPlugin.MaxWeight:N0}");
        return false;
    }

    // A service without a name is named by what it matches ("198.18.9.0/24 tcp/443"); names are unique in a stage.
    private static bool NameServices(List<Service> services, IStageContext context)
    {
        bool ok = true;
        var names = new Dictionary<string, string>();
        for (int i = 0; i < services.Count; i++)
        {
            var s = services[i];
            if (!s.Explicit)
                s.Name = s.Text;
            s.Slot = (uint)i;
            if (!names.TryAdd(s.Name, s.Node.Path))
            {
                context.Error(s.Explicit ? s.Node["name"] : s.Node, $"duplicate service name '{s.Name}' (first given at {names[s.Name]})");
                ok = false;
            }
        }
        return ok;
    }

    // The top-level backends list: each names its service (the form the runtime verbs add to and remove from).
    private static bool ParseBackends(SettingsNode settings, List<Service> services, IStageContext context)
    {
        bool ok = true;
        var list = List(settings, "backends", context, ref ok);
        var byName = services.ToDictionary(s => s.Name);
        var paths = services.ToDictionary(s => s, s => s.Backends.ToDictionary(b => (b.Interface, b.Via), b => b.Node.Path));
        foreach (var node in list)
        {
            if (node.Kind == SettingsKind.Mapping && node["name"].IsMissing)
            {
                context.Error(node["name"], "missing backend name (backends listed apart from their service are named, for the runtime verbs)");
                ok = false;
                continue;
            }
            var serviceNode = node["service"];
            Service? service = null;
            if (node.Kind == SettingsKind.Mapping && (serviceNode.Scalar is not { } serviceName || !byName.TryGetValue(serviceName, out service)))
            {
                context.Error(serviceNode, serviceNode.IsMissing ? "missing service (the name of the service this backend serves)"
                    : $"unknown service '{serviceNode.Scalar}' (services: {(byName.Count == 0 ? "none" : string.Join(", ", byName.Keys))})");
                ok = false;
            }
            if (ParseBackend(node, service?.V6 ?? false, service is not null, inline: false, context) is not { } b || service is null)
            {
                ok = false;
                continue;
            }
            ok &= Join(service, b, node, paths[service], context);
        }
        return ok;
    }

    // A backend without a name is named by its path ("up1@198.18.2.2"), or, where two services share that path,
    // by its service and path; names are unique in a stage (the verbs and the counters find a backend by name).
    private static bool NameBackends(List<Service> services, IStageContext context)
    {
        var all = services.SelectMany(s => s.Backends).ToList();
        var shared = all.Where(b => !b.Explicit).GroupBy(b => b.DefaultName).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet();
        foreach (var b in all.Where(b => !b.Explicit))
            b.Name = shared.Contains(b.DefaultName) ? $"{b.Service.Name}/{b.DefaultName}" : b.DefaultName;
        bool ok = true;
        var names = new Dictionary<string, string>();
        uint slot = 0;
        foreach (var b in all)
        {
            b.Slot = slot++;
            if (!names.TryAdd(b.Name, b.Node.Path))
            {
                context.Error(b.Explicit ? b.Node["name"] : b.Node, $"duplicate backend name '{b.Name}' (first given at {names[b.Name]})");
                ok = false;
            }
            else if (services.Any(s => s.Name == b.Name))
            {
                context.Error(b.Explicit ? b.Node["name"] : b.Node, $"backend name '{b.Name}' is a service's name (their counters are listed by name: name one of them otherwise)");
                ok = false;
            }
        }
        return ok;
    }

    // weights: [{name, weight}]: a backend's weight by name (what 'backend weight' sets without touching its definition).
    private static bool ApplyWeights(SettingsNode settings, Dictionary<string, Backend> byName, IStageContext context)
    {
        bool ok = true;
        foreach (var node in List(settings, "weights", context, ref ok))
        {
            if (node.Kind != SettingsKind.Mapping)
            {
                context.Error(node, "expected a backend's 'name' and 'weight'");
                ok = false;
                continue;
            }
            node.RejectUnknownKeys(context, "name", "weight");
            if (!TryWeight(node["weight"], context, out int weight))
                ok = false;
            else if (Known(node, byName, context, "weights") is { } b)
                b.Weight = weight;
        }
        return ok;
    }

    // drain: [{name}] and down: [{name}]: a backend's state by name.
    private static bool ApplyNames(SettingsNode settings, string key, Dictionary<string, Backend> byName, IStageContext context, Action<Backend> apply)
    {
        bool ok = true;
        foreach (var node in List(settings, key, context, ref ok))
        {
            if (node.Kind != SettingsKind.Mapping)
            {
                context.Error(node, "expected a backend's 'name'");
                ok = false;
                continue;
            }
            node.RejectUnknownKeys(context, "name");
            if (Known(node, byName, context, key) is { } b)
                apply(b);
        }
        return ok;
    }

    // A name no backend has is only warned about: removing a backend must not be refused because it was drained.
    private static Backend? Known(SettingsNode node, Dictionary<string, Backend> byName, IStageContext context, string key)
    {
        if (node["name"].Scalar is { } name && byName.TryGetValue(name, out var b))
            return b;
        context.Warn(node["name"], $"{key}: no backend named '{node["name"].Scalar}' (ignored)");
        return null;
    }

    // Each backend's probe (its own, else its service's) and what the host says of it: a probe that is down takes the
    // backend down, as 'backend down' would (Unknown, before the first results, counts as up: a restart takes nothing out).
    private static bool ApplyProbes(List<Service> services, IStageContext context)
    {
        bool ok = true;
        var names = new Dictionary<string, Backend>(StringComparer.Ordinal);
        foreach (var b in services.SelectMany(s => s.Backends))
        {
            b.Probe = b.ProbeGiven ? b.Probe : b.Service.Probe;
            if (b.Probe is null)
                continue;
            var at = b.ProbeGiven ? b.Node["probe"] : b.Node;
            if (b.Via == 0)
            {
                context.Error(at, $"probe of backend '{b.Name}': no next hop to probe (give the backend 'via', or 'probe: none')");
                ok = false;
            }
            else if (b.ProbeName.Length > 64)
            {
                context.Error(at, $"probe of backend '{b.Name}': the name is {b.ProbeName.Length} characters, a probe's at most 64 (name the backend)");
                ok = false;
            }
            else if (!names.TryAdd(b.ProbeName, b))
            {
                context.Error(at, $"probe of backend '{b.Name}': named '{b.ProbeName}' as that of backend '{names[b.ProbeName].Name}' ('@' is '/' in probe names: rename one)");
                ok = false;
            }
            else
                b.ProbeDown = context.ProbeState(b.ProbeName) == ProbeState.Down;
        }
        return ok;
    }

    // Each service's Maglev table, over the backends that are up (drained, down and withdrawn ones take no entries:
    // Maglev gives the others the table they would have without them, so flows on the others keep their path).
    private static bool BuildTables(List<Service> services, IStageContext context)
    {
        bool ok = true;
        foreach (var s in services.Where(s => s.Backends.Count > 0)) // a service without backends has no table: its packets go to the kernel
        {
            int minimum = MaglevTable.MinimumSize(Math.Max(1, s.Backends.Count));
            int size = s.TableSize ?? Math.Max(LoadBalancerPlugin.DefaultTableSize, minimum);
            if (size < minimum)
            {
                context.Error(s.Node["tableSize"], $"invalid table size '{size}': service {s.Text} has {s.Backends.Count} next hops, so at least {minimum:N0} (64 entries per next hop)");
                ok = false;
                continue;
            }
            s.Table = MaglevTable.Build(s.Backends.Select(b => new MaglevBackend(b.MaglevKey(s.V6), b.State == BackendState.Up ? b.Weight : 0)).ToList(), size);
        }
        return ok;
    }

    // Flow entries and counters know a backend by its 32-bit identity: two alike in one stage would share flows.
    private static bool CheckIdentities(List<Service> services, SettingsNode settings, IStageContext context)
    {
        var ids = new Dictionary<uint, Backend>();
        foreach (var b in services.SelectMany(s => s.Backends))
            if (!ids.TryAdd(b.Id, b))
            {
                context.Error(b.Node, $"backend '{b.Name}' has the identity of backend '{ids[b.Id].Name}' (a 32-bit hash of service, name and path): rename one");
                return false;
            }
        var serviceIds = new HashSet<uint>();
        foreach (var s in services)
            if (!serviceIds.Add(s.Id))
            {
                context.Error(settings, $"service '{s.Name}' has the identity of another service (a 32-bit hash of its name): rename it");
                return false;
            }
        return true;
    }
}
