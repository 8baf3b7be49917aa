using PluginHost.Interop;

namespace PluginHost.Kernel;

/// <summary>
/// Waits until every BPF program that was running when it was called has finished: after it returns, no packet can
/// still be using a map value the host replaced before the call. The kernel offers no direct call for this, but it
/// does it for map-in-map updates (an RCU grace period, so that no program still holds the old inner map), so
/// <see cref="Wait"/> swaps a private inner map in and out of a one-slot array of maps.
/// </summary>
public sealed unsafe class RcuFence : IDisposable
{
    private readonly SafeFd _inner;
    private readonly SafeFd _outer;

    public RcuFence()
    {
        int inner = Libbpf.bpf_map_create(Libbpf.BPF_MAP_TYPE_ARRAY, "ph_fence_in", 4, 4, 1, null);
        if (inner < 0)
            throw new BpfException("create fence map", inner);
        _inner = new SafeFd(inner);
        var opts = new Libbpf.bpf_map_create_opts { sz = (nuint)sizeof(Libbpf.bpf_map_create_opts), inner_map_fd = (uint)inner };
        int outer = Libbpf.bpf_map_create(Libbpf.BPF_MAP_TYPE_ARRAY_OF_MAPS, "ph_fence", 4, 4, 1, &opts);
        if (outer < 0)
        {
            _inner.Dispose();
            throw new BpfException("create fence map", outer);
        }
        _outer = new SafeFd(outer);
    }

    /// <summary>Return once the programs running now have finished (synchronize_rcu in the kernel).</summary>
    public void Wait()
    {
        uint key = 0;
        uint fd = (uint)_inner.Fd;
        int rc = Libbpf.bpf_map_update_elem(_outer.Fd, &key, &fd, Libbpf.BPF_ANY);
        if (rc < 0)
            throw new BpfException("wait for running programs", rc);
    }

    public void Dispose()
    {
        _outer.Dispose();
        _inner.Dispose();
    }
}
