using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace PluginHost.Lab;

/// <summary>Sends test UDP datagrams from inside a namespace.</summary>
internal static class UdpTraffic
{
    /// <summary>
    /// From inside <paramref name="ns"/>, binds a UDP socket to <paramref name="source"/> (port 0) and sends
    /// <paramref name="count"/> datagrams of <paramref name="payloadBytes"/> bytes to <paramref name="destination"/>.
    /// The payload starts with a 4-byte big-endian sequence number. Returns how many sends succeeded.
    /// </summary>
    public static int Send(NetworkNamespace ns, IPAddress source, IPEndPoint destination, int count, int payloadBytes = 64)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(payloadBytes, sizeof(int));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadBytes, 65507);
        if (source.AddressFamily != destination.AddressFamily)
            throw new ArgumentException($"source {source} and destination {destination} differ in address family");

        return ns.Run(() =>
        {
            using var socket = new Socket(source.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.SendTimeout = 1000; // a full send buffer fails a send instead of blocking forever
            socket.Bind(new IPEndPoint(source, 0));

            byte[] payload = new byte[payloadBytes];
            int sent = 0;
            for (int sequence = 0; sequence < count; sequence++)
            {
                BinaryPrimitives.WriteInt32BigEndian(payload, sequence);
                try
                {
                    if (socket.SendTo(payload, SocketFlags.None, destination) == payload.Length)
                        sent++;
                }
                catch (SocketException)
                {
                    // Counted as a failed send (unreachable, no buffer, timed out...).
                }
            }
            return sent;
        });
    }
}
