using PluginHost.Kernel;

namespace PluginHost.Datapath;

/// <summary>
/// Moves a pipeline's tcx link to a prepared generation, and back. The link is created once and then swapped with
/// one compare-and-swap update; only when the hook moved (another interface or direction) or there is no link yet is
/// a new one attached, and then the old one stays open, so attached, until the apply finishes or is reverted.
/// </summary>
internal sealed class LinkSwapper(IDatapathKernel kernel)
{
    /// <summary>
    /// Make the link run <paramref name="prepared"/>'s entry program. <paramref name="replacing"/> hears of a link
    /// left behind on another hook. On failure the link is as it was.
    /// </summary>
    public ApplyKind Swap(PreparedGeneration prepared, Action<TcxLinkInfo> replacing)
    {
        var plan = prepared.Plan;
        var config = plan.Planned.Config;
        var existing = kernel.OpenLink(plan.LinkPath);
        if (existing is not null)
        {
            if (existing.Info.IsOn(plan.Planned.Ifindex, config.Hook))
            {
                using (existing)
                    existing.Update(plan.EntryPin, plan.LiveEntryPin); // compare-and-swap against the generation we believe runs
                return ApplyKind.Swapped;
            }
            replacing(existing.Info);
            prepared.ReplacedLink = existing;
        }
        try
        {
            prepared.NewLink = kernel.Attach(plan.EntryPin, plan.Planned.Ifindex, config.Hook, config.Namespace);
            if (existing is not null)
            {
                kernel.Remove(plan.LinkPath);
                prepared.OldLinkUnpinned = true;
            }
            prepared.NewLink.Pin(plan.LinkPath);
            prepared.NewLinkPinned = true;
            return ApplyKind.Attached;
        }
        catch
        {
            SwapBack(prepared);
            throw;
        }
    }

    /// <summary>Undo <see cref="Swap"/>: the previous generation runs again (by the same compare-and-swap), or the new
    /// link goes and the old one is pinned again.</summary>
    public void SwapBack(PreparedGeneration prepared)
    {
        var plan = prepared.Plan;
        if (prepared.NewLink is null)
        {
            using var link = kernel.OpenLink(plan.LinkPath)
                ?? throw new HostException($"revert pipeline {plan.Name}: link {plan.LinkPath} is gone");
            link.Update(plan.LiveEntryPin!, plan.EntryPin);
            return;
        }
        if (prepared.NewLinkPinned)
            kernel.Remove(plan.LinkPath);
        prepared.NewLinkPinned = false;
        prepared.NewLink.Dispose(); // unpinned and closed: detached
        prepared.NewLink = null;
        if (prepared.ReplacedLink is not null && prepared.OldLinkUnpinned)
        {
            prepared.ReplacedLink.Pin(plan.LinkPath);
            prepared.OldLinkUnpinned = false;
        }
    }
}
