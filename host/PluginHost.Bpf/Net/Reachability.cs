using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PluginHost.Net;

/// <summary>
/// One health probe: an ICMP echo or a TCP connect, from a network namespace, out of one interface (SO_BINDTODEVICE, so the
/// routing table cannot send it another way). The socket is created inside the namespace (a socket belongs to the namespace
/// it was made in), then used from any thread. Each returns null on success, else why it failed, in words ("timeout after
/// 200 ms", "connection refused", "interface 'up2' does not exist").
/// </summary>
public static class Reachability
{
    private const int SOL_SOCKET = 1, SO_BINDTODEVICE = 25;
    private static int _sequence = Random.Shared.Next(ushort.MaxValue);
    // Raw sockets see every echo reply in the namespace: replies to this process carry its identifier.
    private static readonly ushort Identifier = (ushort)Random.Shared.Next(1, ushort.MaxValue);

    /// <summary>Send one echo request to <paramref name="target"/> and wait up to <paramref name="timeout"/> for its reply.</summary>
    public static Task<string?> EchoAsync(string? ns, string iface, IPAddress target, TimeSpan timeout, CancellationToken stop) =>
        AttemptAsync(timeout, stop, async deadline =>
        {
            bool v6 = target.AddressFamily == AddressFamily.InterNetworkV6;
            ushort sequence = (ushort)Interlocked.Increment(ref _sequence);
            using var socket = Open(ns, iface, target.AddressFamily, SocketType.Dgram, v6 ? ProtocolType.IcmpV6 : ProtocolType.Icmp, raw: true);
            bool raw = socket.SocketType == SocketType.Raw;
            await socket.SendToAsync(EchoRequest(v6, sequence), SocketFlags.None, new IPEndPoint(target, 0), deadline);
            var buffer = new byte[1500];
            while (true)
            {
                var got = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, 0), deadline);
                if (((IPEndPoint)got.RemoteEndPoint).Address.Equals(target) && IsReply(buffer.AsSpan(0, got.ReceivedBytes), v6, raw, sequence))
                    return;
            }
        });

    /// <summary>Connect to <paramref name="target"/>:<paramref name="port"/> within <paramref name="timeout"/>, then reset the connection.</summary>
    public static Task<string?> ConnectAsync(string? ns, string iface, IPAddress target, int port, TimeSpan timeout, CancellationToken stop) =>
        AttemptAsync(timeout, stop, async deadline =>
        {
            using var socket = Open(ns, iface, target.AddressFamily, SocketType.Stream, ProtocolType.Tcp, raw: false);
            // Reset rather than close: a probe every second must not leave a TIME_WAIT socket behind each time.
            socket.LingerState = new LingerOption(true, 0);
            await socket.ConnectAsync(new IPEndPoint(target, port), deadline);
        });

    // One probe within its timeout: null when it completed, else why not. Stopping is not a failure: it is thrown.
    private static async Task<string?> AttemptAsync(TimeSpan timeout, CancellationToken stop, Func<CancellationToken, Task> probe)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stop);
        deadline.CancelAfter(timeout);
        try
        {
            await probe(deadline.Token);
            return null;
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested)
        {
            return $"timeout after {timeout.TotalMilliseconds:F0} ms";
        }
        catch (SocketException e)
        {
            return Describe(e);
        }
        catch (Unusable e)
        {
            return e.Message;
        }
    }

    // Created in the namespace, bound to the interface. An ICMP datagram ("ping") socket needs the process's group in the
    // namespace's net.ipv4.ping_group_range (empty by default in a new namespace): a raw socket is root's way instead.
    private static Socket Open(string? ns, string iface, AddressFamily family, SocketType type, ProtocolType protocol, bool raw) =>
        NamespaceScope.Run(ns, () =>
        {
            Socket socket;
            try
            {
                socket = new Socket(family, type, protocol);
            }
            catch (SocketException) when (raw)
            {
                socket = new Socket(family, SocketType.Raw, protocol);
            }
            try
            {
                socket.SetRawSocketOption(SOL_SOCKET, SO_BINDTODEVICE, Encoding.ASCII.GetBytes(iface + "\0"));
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                // ENODEV has no SocketError of its own: say what the interface is instead of "unknown socket error".
                throw Interfaces.Lookup(iface).Problem is { } problem ? new Unusable(problem) : e;
            }
        });

    // The probe cannot be sent as asked (its interface is missing): a failure, worded.
    private sealed class Unusable(string reason) : HostException(reason);

    private static byte[] EchoRequest(bool v6, ushort sequence)
    {
        var message = new byte[8 + 16];
        message[0] = v6 ? (byte)128 : (byte)8; // echo request
        BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(4), Identifier);
        BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(6), sequence);
        Encoding.ASCII.GetBytes("pluginhost probe", message.AsSpan(8));
        // ICMPv6's checksum covers a pseudo-header: the kernel fills it in. ICMP's does not: a raw socket sends ours.
        if (!v6)
            BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(2), Checksum(message));
        return message;
    }

    // A datagram socket gets the ICMP message with the identifier the kernel chose; a raw IPv4 socket gets the IP header too.
    private static bool IsReply(ReadOnlySpan<byte> data, bool v6, bool raw, ushort sequence)
    {
        if (raw && !v6)
        {
            if (data.Length < 20)
                return false;
            data = data[((data[0] & 0x0f) * 4)..];
        }
        return data.Length >= 8 && data[0] == (v6 ? 129 : 0)
            && BinaryPrimitives.ReadUInt16BigEndian(data[6..]) == sequence
            && (!raw || BinaryPrimitives.ReadUInt16BigEndian(data[4..]) == Identifier);
    }

    internal static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < data.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (data.Length % 2 == 1)
            sum += (uint)data[^1] << 8;
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    // "connection refused", "network is unreachable": the kernel's words, as ip and ping print them.
    private static string Describe(SocketException e) => e.Message.Length == 0 ? e.SocketErrorCode.ToString() : char.ToLowerInvariant(e.Message[0]) + e.Message[1..];
}
