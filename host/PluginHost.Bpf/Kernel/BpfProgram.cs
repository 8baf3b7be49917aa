using System.Runtime.InteropServices;
using PluginHost.Interop;

namespace PluginHost.Kernel;

/// <summary>A loaded BPF program (an fd the host owns).</summary>
public sealed unsafe class BpfProgram : IDisposable
{
    internal BpfProgram(string name, SafeFd handle)
    {
        Name = name;
        Handle = handle;
    }

    public string Name { get; }

    internal SafeFd Handle { get; }

    /// <summary>The kernel's id for the program (what bpftool prog shows).</summary>
    public uint Id => ObjectInfo.Id(Handle, "program");

    /// <summary>Its size once verified: instructions after the verifier's rewrites, and bytes of JIT-compiled code.</summary>
    public (uint Instructions, uint JitedBytes) Size
    {
        get
        {
            var (jited, instructions) = ObjectInfo.ProgramSize(Handle);
            return (instructions, jited);
        }
    }

    /// <summary>Open a pinned program.</summary>
    public static BpfProgram OpenPinned(string path) => new(Path.GetFileName(path), BpfFs.OpenPinned(path, "program"));

    public void Pin(string path) => BpfFs.Pin(Handle, path);

    /// <summary>sizeof(struct __sk_buff) in the uapi headers (checked by a layout test).</summary>
    public const int SkbContextSize = 192;

    /// <summary>Byte offset of __sk_buff.cb[0].</summary>
    public const int SkbCbOffset = 48;

    /// <summary>Byte offset of __sk_buff.ifindex.</summary>
    public const int SkbIfindexOffset = 40;

    /// <summary>
    /// Run the program on a packet with BPF_PROG_TEST_RUN; the kernel never sees the packet. The
    /// result carries the verdict, the packet as the program left it, skb->cb and the kernel's timing.
    /// </summary>
    public TestRunResult TestRun(ReadOnlySpan<byte> packet, int repeat = 1, uint ifindex = 0)
    {
        var output = new byte[packet.Length + 256];
        var ctxIn = new byte[SkbContextSize];
        var ctxOut = new byte[SkbContextSize];
        BitConverter.TryWriteBytes(ctxIn.AsSpan(SkbIfindexOffset), ifindex);
        fixed (byte* input = packet)
        fixed (byte* outBuf = output)
        fixed (byte* cin = ctxIn)
        fixed (byte* cout = ctxOut)
        {
            var opts = new Libbpf.bpf_test_run_opts
            {
                sz = (nuint)sizeof(Libbpf.bpf_test_run_opts),
                data_in = input,
                data_size_in = (uint)packet.Length,
                data_out = outBuf,
                data_size_out = (uint)output.Length,
                ctx_in = cin,
                ctx_size_in = SkbContextSize,
                ctx_out = cout,
                ctx_size_out = SkbContextSize,
                repeat = repeat,
            };
            int rc = Libbpf.bpf_prog_test_run_opts(Handle.Fd, &opts);
            if (rc < 0)
                throw new BpfException($"test-run program {Name}", rc);
            var cb = Enumerable.Range(0, 5).Select(i => BitConverter.ToUInt32(ctxOut, SkbCbOffset + i * 4)).ToArray();
            return new TestRunResult((int)opts.retval, output.AsSpan(0, (int)opts.data_size_out).ToArray(), opts.duration, cb);
        }
    }

    public void Dispose() => Handle.Dispose();
}

/// <summary>Verdict, output bytes, skb->cb after the run and the kernel's own per-run time.</summary>
public sealed record TestRunResult(int ReturnValue, byte[] Output, uint DurationNs, uint[] Cb);
