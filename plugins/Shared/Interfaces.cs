using System.Net;
using PluginHost.Contract;

namespace PluginHost.Plugins.Shared;

/// <summary>
/// Output interfaces (contract 2.1, <see cref="IStageContext.ResolveOutput"/>): an interface that is missing or down
/// withdraws its routes (ifindex 0: the datapath passes their packets to the kernel) instead of refusing the
/// configuration; a name that can never be an interface, or a next hop that is not on-link for it, refuses the route.
/// An instance resolves the lines of one routes file: each (interface, next hop) once, every line counted, and the host
/// told how many routes each withdrawal stands for.
/// </summary>
internal sealed class Interfaces(IStageContext context, SettingsNode node)
{
    /// <summary>Every (interface, next hop) resolved so far, what the host said, and how many lines named it.</summary>
    public Dictionary<(string Name, IPAddress? Via), (OutputInterface Result, int Lines)> Resolved { get; } = [];

    /// <summary>Resolve the output of one line; the reason it is refused, or null (ifindex 0 when withdrawn).</summary>
    public string? Problem(string name, IPAddress? via, out int ifindex)
    {
        if (!Resolved.TryGetValue((name, via), out var known))
            known = (context.ResolveOutput(node, name, via, routes: 0), 0);
        Resolved[(name, via)] = (known.Result, known.Lines + 1);
        ifindex = known.Result.Ifindex;
        return known.Result.InterfaceError ?? known.Result.NextHopError;
    }

    /// <summary>Tell the host how many routes each withdrawn output stands for (after parsing, or when a cached table is used again).</summary>
    public static void Report(IStageContext context, SettingsNode node, IReadOnlyDictionary<(string Name, IPAddress? Via), (OutputInterface Result, int Lines)> resolved)
    {
        foreach (var ((name, via), (result, lines)) in resolved)
            if (result.Withdrawn)
                context.ResolveOutput(node, name, via, routes: lines);
    }

    /// <summary>Whether every output still resolves as it did (interfaces come and go, are recreated with a new ifindex, gain addresses).</summary>
    public static bool Unchanged(IReadOnlyDictionary<(string Name, IPAddress? Via), (OutputInterface Result, int Lines)> resolved, IStageContext context, SettingsNode node) =>
        resolved.All(r => context.ResolveOutput(node, r.Key.Name, r.Key.Via, routes: 0) == r.Value.Result);

    /// <summary>
    /// Resolve the output interface named at <paramref name="iface"/> for a route with next hop <paramref name="via"/> (null:
    /// the packet's destination); problems are reported at the field they are about. False when the route is refused; true
    /// with ifindex 0 when it is withdrawn.
    /// </summary>
    public static bool TryResolve(IStageContext context, SettingsNode iface, IPAddress? via, SettingsNode viaNode, out int ifindex)
    {
        ifindex = 0;
        if (iface.Kind != SettingsKind.Scalar)
        {
            context.Error(iface, "missing output interface");
            return false;
        }
        var found = context.ResolveOutput(iface, iface.Scalar!, via);
        if (found.InterfaceError is { } error)
        {
            context.Error(iface, error);
            return false;
        }
        if (found.NextHopError is { } offLink)
        {
            context.Error(viaNode, offLink);
            return false;
        }
        ifindex = found.Ifindex;
        return true;
    }
}
