using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Kernel;

/// <summary>Pinning in the BPF filesystem.</summary>
public static class BpfFs
{
    /// <summary>Fail early, with the remedy, when <paramref name="root"/> is not on a mounted bpffs.</summary>
    public static void EnsureUsable(string root)
    {
        if (!IsOnBpfFs(root))
            throw new BpfException($"use BPF filesystem at {root}: not on a mounted bpffs (mount -t bpf bpf /sys/fs/bpf)");
        Directory.CreateDirectory(root);
    }

    /// <summary>Whether <paramref name="root"/> (or, while it does not exist yet, its nearest existing parent) is on a mounted bpffs; creates nothing.</summary>
    public static bool IsOnBpfFs(string root)
    {
        string? probe = root;
        while (probe is not null && !Directory.Exists(probe))
            probe = Path.GetDirectoryName(probe);
        return probe is not null && IsBpfFs(probe);
    }

    // One statfs, not a read of every mount: an apply asks each time.
    private static unsafe bool IsBpfFs(string path)
    {
        byte* buffer = stackalloc byte[120];
        return Interop.Libc.StatFs(path, buffer) == 0 && *(long*)buffer == Interop.Libc.BPF_FS_MAGIC;
    }

    internal static void Pin(SafeFd fd, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        int rc = Libbpf.bpf_obj_pin(fd.Fd, path);
        if (rc < 0)
            throw new BpfException($"pin {path}", rc);
    }

    internal static SafeFd OpenPinned(string path, string what)
    {
        int fd = Libbpf.bpf_obj_get(path);
        if (fd < 0)
            throw new BpfException($"open pinned {what} {path}", fd);
        return new SafeFd(fd);
    }

    /// <summary>Remove pins (and the directories holding them) under <paramref name="dir"/>.</summary>
    public static void RemoveTree(string dir)
    {
        if (Directory.Exists(dir))
            Directory.Delete(dir, recursive: true);
    }

    /// <summary>Number of CPUs the kernel may use: the width of a per-CPU map value.</summary>
    public static int PossibleCpus { get; } = Libbpf.libbpf_num_possible_cpus();
}
