using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Numerics;

namespace PluginHost.Lab;

/// <summary>What a <see cref="UdpStream"/> sent and what arrived.</summary>
/// <param name="Sent">Sequence numbers handed to the kernel: 0 .. Sent-1 (a failed send is retried, never skipped).</param>
/// <param name="Received">Distinct sequence numbers in [0, Sent) that arrived.</param>
/// <param name="Lost">Sequence numbers in [0, Sent) that never arrived.</param>
/// <param name="Duplicates">Arrivals of a sequence number already seen.</param>
/// <param name="Reordered">Arrivals of a new sequence number lower than the highest seen before it.</param>
/// <param name="SendRetries">Sends the kernel refused (ENOBUFS, a queued ICMP error...) and that were retried.</param>
/// <param name="Duration">From the first send to the last.</param>
/// <param name="PacketsPerSecond">Sent / Duration.</param>
/// <param name="LostRanges">The first (up to 20) runs of lost sequence numbers, both ends inclusive.</param>
/// <param name="ReceiveBufferErrors">
/// Growth of the receiver namespace's UDP <c>RcvbufErrors</c> (datagrams the kernel dropped because a socket's
/// receive buffer was full) while the stream ran. Loss with as many receive-buffer errors is the receiving
/// socket's, not the datapath's. Namespace-wide: counts every UDP socket in that namespace.
/// </param>
public sealed record UdpStreamResult(
    long Sent,
    long Received,
    long Lost,
    long Duplicates,
    long Reordered,
    long SendRetries,
    TimeSpan Duration,
    double PacketsPerSecond,
    IReadOnlyList<(long From, long To)> LostRanges,
    long ReceiveBufferErrors)
{
    /// <summary>Growth of the receiver namespace's UDP <c>InErrors</c> (includes <see cref="ReceiveBufferErrors"/>); -1 when unreadable.</summary>
    public long ReceiveInErrors { get; init; }

    /// <summary>Growth of the sender namespace's UDP <c>SndbufErrors</c> (sends the kernel dropped); -1 when unreadable.</summary>
    public long SendBufferErrors { get; init; }

    /// <summary>Datagrams on the destination port that did not belong to this stream (another sender, a stale test).</summary>
    public long Foreign { get; init; }

    /// <summary>Arrivals carrying a sequence number at or beyond <see cref="Sent"/> (should never happen).</summary>
    public long Unexpected { get; init; }

    /// <summary>The last send error (errno name), or null when every send succeeded first time.</summary>
    public string? LastSendError { get; init; }

    /// <summary>True when the sender stopped by itself at the maximum duration.</summary>
    public bool TimedOut { get; init; }

    /// <summary>With <c>trackInterfaces</c>: datagrams by the receiver's interface (ifindex) they arrived on.</summary>
    public IReadOnlyDictionary<int, long> ArrivalsByInterface { get; init; } = new Dictionary<int, long>();

    /// <summary>With <c>trackInterfaces</c>: each time the arrival interface changed, in order (the first arrival included).</summary>
    public IReadOnlyList<PathChange> PathChanges { get; init; } = [];

    public override string ToString() =>
        $"sent {Sent}, received {Received}, lost {Lost}, duplicates {Duplicates}, reordered {Reordered}, " +
        $"send retries {SendRetries}{(LastSendError is null ? "" : $" (last {LastSendError})")}, " +
        $"{PacketsPerSecond:0} pps over {Duration.TotalSeconds:0.000} s, receive buffer errors {ReceiveBufferErrors}, " +
        $"udp InErrors {ReceiveInErrors}, SndbufErrors {SendBufferErrors}, foreign {Foreign}, unexpected {Unexpected}" +
        (LostRanges.Count == 0 ? "" : ", lost ranges " + string.Join(' ', LostRanges.Select(r => r.From == r.To ? $"{r.From}" : $"{r.From}-{r.To}")));
}

/// <summary>Datagrams started arriving on another interface of the receiver.</summary>
/// <param name="Sequence">The first datagram that arrived there.</param>
/// <param name="Ifindex">The receiver's interface (IP_PKTINFO).</param>
/// <param name="Timestamp">When it arrived (<see cref="Stopwatch.GetTimestamp"/>).</param>
public sealed record PathChange(long Sequence, int Ifindex, long Timestamp);

/// <summary>
/// A steady, paced UDP stream from a socket in one namespace to a socket in another, for "no packet lost while
/// X happens" tests. Every datagram carries a 64-bit sequence number; the receiver records which arrived.
/// <para>
/// Payload layout: bytes 0-7 the big-endian sequence number, bytes 8-15 a random tag of this stream (datagrams
/// without it are counted as <see cref="UdpStreamResult.Foreign"/> and ignored), the rest zero.
/// </para>
/// <para>
/// The sender paces against a <see cref="Stopwatch"/> in small batches (about one per millisecond), so short
/// scheduling hiccups are caught up rather than lowering the rate; it has <c>IP_RECVERR</c> set, so a send the
/// kernel drops (ENOBUFS from a full device queue) fails visibly and is retried with the same sequence number.
/// The receiver has an 8 MiB receive buffer (SO_RCVBUFFORCE, beyond <c>rmem_max</c>, when running as root) and
/// reads in a tight loop; <see cref="UdpStreamResult.ReceiveBufferErrors"/> tells if it still fell behind.
/// </para>
/// </summary>
public sealed class UdpStream : IDisposable
{
    /// <summary>Smallest payload: sequence number and stream tag.</summary>
    public const int MinPayloadBytes = 16;

    /// <summary>Receive buffer asked for (the kernel doubles it for bookkeeping).</summary>
    public const int ReceiveBufferBytes = 8 << 20;

    /// <summary>Send buffer asked for.</summary>
    public const int SendBufferBytes = 4 << 20;

    /// <summary>Default bound on how long the sender runs when nobody stops it.</summary>
    public static readonly TimeSpan DefaultMaxDuration = TimeSpan.FromSeconds(120);

    /// <summary>Stop waits until the receiver saw nothing for this long...</summary>
    public static readonly TimeSpan QuietPeriod = TimeSpan.FromMilliseconds(300);

    /// <summary>...but no longer than this.</summary>
    public static readonly TimeSpan MaxDrainTime = TimeSpan.FromSeconds(3);

    private const int MaxLostRanges = 20;
    private const int ReceivePollMilliseconds = 100;
    private const int SolSocket = 1, SoSndBufForce = 32, SoRcvBufForce = 33;
    private const int SolIp = 0, IpRecvErr = 11;

    private readonly NetworkNamespace _senderNs;
    private readonly NetworkNamespace _receiverNs;
    private readonly Socket _sendSocket;
    private readonly Socket _receiveSocket;
    private readonly Thread _sender;
    private readonly Thread _receiver;
    private readonly int _packetsPerSecond;
    private readonly int _payloadBytes;
    private readonly TimeSpan _maxDuration;
    private readonly long _tag;
    private readonly long _maxSequence; // anything above cannot be ours: never grow the bit set for it
    private readonly (long RcvbufErrors, long InErrors)? _receiverSnmpBefore;
    private readonly long? _senderSndbufBefore;
    private readonly object _gate = new();
    private readonly bool _trackInterfaces;
    private readonly Dictionary<int, long> _byInterface = [];
    private readonly List<PathChange> _pathChanges = [];
    private int _lastIfindex = -1;

    private volatile bool _stopSending;
    private volatile bool _stopReceiving;
    private long _sent;
    private long _sendRetries;
    private volatile string? _lastSendError;
    private long _sendStartTicks = -1, _sendEndTicks = -1;
    private volatile bool _timedOut;
    private Exception? _senderFailure, _receiverFailure;

    // Receiver state: written by the receiver thread only; read by Stop after it ended.
    private ulong[] _seen = new ulong[1024];
    private long _distinct;
    private long _arrivals;
    private long _duplicates;
    private long _reordered;
    private long _foreign;
    private long _highest = -1;

    private UdpStreamResult? _result;

    private UdpStream(NetworkNamespace senderNs, NetworkNamespace receiverNs, Socket sendSocket, Socket receiveSocket,
        int packetsPerSecond, int payloadBytes, TimeSpan maxDuration, bool trackInterfaces)
    {
        _trackInterfaces = trackInterfaces;
        _senderNs = senderNs;
        _receiverNs = receiverNs;
        _sendSocket = sendSocket;
        _receiveSocket = receiveSocket;
        _packetsPerSecond = packetsPerSecond;
        _payloadBytes = payloadBytes;
        _maxDuration = maxDuration;
        _tag = Random.Shared.NextInt64(1, long.MaxValue);
        _maxSequence = (long)Math.Min(long.MaxValue / 2, (maxDuration.TotalSeconds + 10) * packetsPerSecond * 2 + 1_000_000);
        Source = (IPEndPoint)sendSocket.LocalEndPoint!;
        Destination = (IPEndPoint)receiveSocket.LocalEndPoint!;
        _receiverSnmpBefore = ReadReceiverSnmp(receiverNs);
        _senderSndbufBefore = ReadSenderSndbufErrors(senderNs);
        _receiver = new Thread(ReceiveLoop) { IsBackground = true, Name = $"udp stream rx {receiverNs.Name} {Destination}" };
        _sender = new Thread(SendLoop) { IsBackground = true, Name = $"udp stream tx {senderNs.Name} {Source}" };
    }

    /// <summary>The sender's bound address and port.</summary>
    public IPEndPoint Source { get; }

    /// <summary>The receiver's bound address and port.</summary>
    public IPEndPoint Destination { get; }

    /// <summary>Sequence numbers sent so far.</summary>
    public long Sent => Volatile.Read(ref _sent);

    /// <summary>Distinct sequence numbers received so far.</summary>
    public long Received => Volatile.Read(ref _distinct);

    /// <summary>With <c>trackInterfaces</c>: the changes of arrival interface so far.</summary>
    public IReadOnlyList<PathChange> PathChanges
    {
        get
        {
            lock (_pathChanges)
                return _pathChanges.ToList();
        }
    }

    /// <summary>True once the sender stopped (Stop, or the maximum duration passed).</summary>
    public bool SenderStopped => !_sender.IsAlive;

    /// <summary>
    /// Binds a receiver to <paramref name="destination"/> inside <paramref name="receiverNs"/>, a sender to
    /// <paramref name="source"/> (port 0) inside <paramref name="senderNs"/>, and starts sending
    /// <paramref name="packetsPerSecond"/> datagrams of <paramref name="payloadBytes"/> bytes per second until
    /// <see cref="Stop"/> or <paramref name="maxDuration"/> (default 120 s). With <paramref name="trackInterfaces"/> (IPv4),
    /// the receiver notes which of its interfaces each datagram arrived on (which uplink it took).
    /// </summary>
    public static UdpStream Start(NetworkNamespace senderNs, IPAddress source, NetworkNamespace receiverNs,
        IPEndPoint destination, int packetsPerSecond, int payloadBytes = 64, TimeSpan? maxDuration = null, bool trackInterfaces = false)
    {
        ArgumentNullException.ThrowIfNull(senderNs);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(receiverNs);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentOutOfRangeException.ThrowIfLessThan(packetsPerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(packetsPerSecond, 10_000_000);
        ArgumentOutOfRangeException.ThrowIfLessThan(payloadBytes, MinPayloadBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadBytes, 65507);
        TimeSpan max = maxDuration ?? DefaultMaxDuration;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(max, TimeSpan.Zero, nameof(maxDuration));
        if (source.AddressFamily != destination.AddressFamily)
            throw new ArgumentException($"source {source} and destination {destination} differ in address family");

        Socket receiveSocket = receiverNs.Run(() => OpenReceiver(destination, trackInterfaces));
        Socket? sendSocket = null;
        try
        {
            sendSocket = senderNs.Run(() => OpenSender(source, destination));
            var stream = new UdpStream(senderNs, receiverNs, sendSocket, receiveSocket, packetsPerSecond, payloadBytes, max, trackInterfaces);
            stream._receiver.Start();
            stream._sender.Start();
            return stream;
        }
        catch
        {
            sendSocket?.Dispose();
            receiveSocket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Stops sending, waits until nothing arrived for <see cref="QuietPeriod"/> (at most <see cref="MaxDrainTime"/>),
    /// stops receiving and returns the tally. Idempotent: later calls return the same result.
    /// </summary>
    /// <exception cref="InvalidOperationException">A sender or receiver thread failed unexpectedly.</exception>
    public UdpStreamResult Stop()
    {
        lock (_gate)
        {
            if (_result is null)
            {
                _stopSending = true;
                _sender.Join();

                // Drain: whatever is still in flight (queues, softirq backlog, the receive buffer) lands now.
                var drain = Stopwatch.StartNew();
                long lastCount = Volatile.Read(ref _arrivals);
                var lastChange = drain.Elapsed;
                while (drain.Elapsed < MaxDrainTime && _receiver.IsAlive)
                {
                    Thread.Sleep(20);
                    long count = Volatile.Read(ref _arrivals);
                    if (count != lastCount)
                    {
                        lastCount = count;
                        lastChange = drain.Elapsed;
                    }
                    else if (drain.Elapsed - lastChange >= QuietPeriod)
                        break;
                }

                var receiverSnmpAfter = ReadReceiverSnmp(_receiverNs);
                long? senderSndbufAfter = ReadSenderSndbufErrors(_senderNs);

                _stopReceiving = true;
                if (!_receiver.Join(TimeSpan.FromSeconds(2)))
                {
                    _receiveSocket.Dispose(); // a receive blocked without a timeout (should not happen)
                    _receiver.Join(TimeSpan.FromSeconds(1));
                }
                _receiveSocket.Dispose();
                _sendSocket.Dispose();

                _result = Tally(receiverSnmpAfter, senderSndbufAfter);
            }
        }
        Exception? failure = _senderFailure ?? _receiverFailure;
        if (failure is not null)
            throw new InvalidOperationException($"udp stream {Source} -> {Destination}: {failure.Message}", failure);
        return _result;
    }

    /// <summary>Stops the stream; never throws.</summary>
    public void Dispose()
    {
        try
        {
            Stop();
        }
        catch (Exception)
        {
            // Dispose never throws; Stop reports thread failures.
        }
    }

    private UdpStreamResult Tally((long RcvbufErrors, long InErrors)? receiverSnmpAfter, long? senderSndbufAfter)
    {
        long sent = Volatile.Read(ref _sent);
        var ranges = new List<(long From, long To)>();
        long received = 0;
        long lost = 0;
        long runStart = -1;
        for (long word = 0; word * 64 < sent; word++)
        {
            ulong bits = word < _seen.Length ? _seen[word] : 0;
            long baseSeq = word * 64;
            long validBits = Math.Min(64, sent - baseSeq);
            ulong mask = validBits == 64 ? ulong.MaxValue : (1UL << (int)validBits) - 1;
            ulong present = bits & mask;
            received += BitOperations.PopCount(present);
            if (present == mask)
            {
                CloseRun(baseSeq - 1);
                continue;
            }
            for (int bit = 0; bit < validBits; bit++)
            {
                long seq = baseSeq + bit;
                if ((present & (1UL << bit)) != 0)
                    CloseRun(seq - 1);
                else if (runStart < 0)
                    runStart = seq;
            }
        }
        CloseRun(sent - 1);

        void CloseRun(long last)
        {
            if (runStart < 0)
                return;
            lost += last - runStart + 1;
            if (ranges.Count < MaxLostRanges)
                ranges.Add((runStart, last));
            runStart = -1;
        }

        long duration = _sendStartTicks < 0 ? 0 : Math.Max(0, _sendEndTicks - _sendStartTicks);
        var elapsed = TimeSpan.FromSeconds(duration / (double)Stopwatch.Frequency);
        return new UdpStreamResult(
            Sent: sent,
            Received: received,
            Lost: lost,
            Duplicates: _duplicates,
            Reordered: _reordered,
            SendRetries: Volatile.Read(ref _sendRetries),
            Duration: elapsed,
            PacketsPerSecond: elapsed > TimeSpan.Zero ? sent / elapsed.TotalSeconds : 0,
            LostRanges: ranges,
            ReceiveBufferErrors: _receiverSnmpBefore is { } b1 && receiverSnmpAfter is { } a1 ? a1.RcvbufErrors - b1.RcvbufErrors : -1)
        {
            ReceiveInErrors = _receiverSnmpBefore is { } b2 && receiverSnmpAfter is { } a2 ? a2.InErrors - b2.InErrors : -1,
            SendBufferErrors = _senderSndbufBefore is { } b3 && senderSndbufAfter is { } a3 ? a3 - b3 : -1,
            Foreign = _foreign,
            Unexpected = Math.Max(0, _distinct - received),
            LastSendError = _lastSendError,
            TimedOut = _timedOut,
            ArrivalsByInterface = new Dictionary<int, long>(_byInterface),
            PathChanges = PathChanges,
        };
    }

    private static Socket OpenReceiver(IPEndPoint destination, bool trackInterfaces)
    {
        var socket = new Socket(destination.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (trackInterfaces)
                socket.SetSocketOption(SocketOptionLevel.IP, SocketOptionName.PacketInformation, true);
            SetBuffer(socket, SoRcvBufForce, SocketOptionName.ReceiveBuffer, ReceiveBufferBytes);
            socket.ReceiveTimeout = ReceivePollMilliseconds;
            socket.Bind(destination);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static Socket OpenSender(IPAddress source, IPEndPoint destination)
    {
        var socket = new Socket(source.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            SetBuffer(socket, SoSndBufForce, SocketOptionName.SendBuffer, SendBufferBytes);
            socket.SendTimeout = 1000; // a full send buffer fails a send (and it is retried) instead of hanging
            if (source.AddressFamily == AddressFamily.InterNetwork)
            {
                // Without IP_RECVERR the kernel reports a dropped send (ENOBUFS) as success.
                socket.SetRawSocketOption(SolIp, IpRecvErr, BitConverter.GetBytes(1));
            }
            socket.Bind(new IPEndPoint(source, 0));
            socket.Connect(destination); // route and source fixed once; send() instead of sendto()
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>SO_xxxBUFFORCE (root: beyond net.core.[rw]mem_max), else the capped SO_xxxBUF.</summary>
    private static void SetBuffer(Socket socket, int forceOption, SocketOptionName option, int bytes)
    {
        try
        {
            socket.SetRawSocketOption(SolSocket, forceOption, BitConverter.GetBytes(bytes));
        }
        catch (SocketException)
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, option, bytes);
        }
    }

    private void SendLoop()
    {
        try
        {
            byte[] payload = new byte[_payloadBytes];
            BinaryPrimitives.WriteInt64BigEndian(payload.AsSpan(8), _tag);
            long frequency = Stopwatch.Frequency;
            long maxTicks = (long)(_maxDuration.TotalSeconds * frequency);
            // Whatever is due is sent at once, in batches of at most ~5 ms' worth; then the thread sleeps for
            // a tick (Thread.Sleep(1) is ~1.1 ms), so at 20k pps a batch is ~20 datagrams. A larger debt (a
            // descheduled thread) is caught up, but never more than 100 ms of it: beyond that the schedule restarts.
            int batch = Math.Max(1, _packetsPerSecond / 200);
            long maxDebt = Math.Max(batch, _packetsPerSecond / 10);
            long sequence = 0;
            long scheduleBase = 0; // sequence number due at scheduleStart
            long start = Stopwatch.GetTimestamp();
            long scheduleStart = start;
            Volatile.Write(ref _sendStartTicks, start);
            int consecutiveFailures = 0;

            while (!_stopSending)
            {
                long now = Stopwatch.GetTimestamp();
                if (now - start >= maxTicks)
                {
                    _timedOut = true;
                    break;
                }
                long due = scheduleBase + (long)((now - scheduleStart) * (double)_packetsPerSecond / frequency) + 1;
                if (due - sequence > maxDebt)
                {
                    scheduleBase = sequence;
                    scheduleStart = now;
                    due = sequence + 1;
                }
                if (due <= sequence)
                {
                    Thread.Sleep(1);
                    continue;
                }

                long end = Math.Min(due, sequence + batch);
                while (sequence < end && !_stopSending)
                {
                    BinaryPrimitives.WriteInt64BigEndian(payload, sequence);
                    int n = _sendSocket.Send(payload, SocketFlags.None, out SocketError error);
                    if (error == SocketError.Success && n == payload.Length)
                    {
                        sequence++;
                        Volatile.Write(ref _sent, sequence);
                        consecutiveFailures = 0;
                        continue;
                    }
                    // Dropped by the kernel (ENOBUFS: a full queue), an ICMP error reported late, a timeout:
                    // send the same sequence number again after a short pause.
                    Interlocked.Increment(ref _sendRetries);
                    _lastSendError = error == SocketError.Success ? $"short send {n}/{payload.Length}" : error.ToString();
                    consecutiveFailures++;
                    if (consecutiveFailures < 4)
                        Thread.Yield();
                    else
                        Thread.Sleep(1);
                    if (Stopwatch.GetTimestamp() - start >= maxTicks)
                        break;
                }
            }
            Volatile.Write(ref _sendEndTicks, Stopwatch.GetTimestamp());
        }
        catch (Exception e)
        {
            Volatile.Write(ref _sendEndTicks, Stopwatch.GetTimestamp());
            _senderFailure = e;
        }
    }

    private void ReceiveLoop()
    {
        try
        {
            byte[] buffer = new byte[65536];
            long hardStop = Stopwatch.GetTimestamp() +
                (long)((_maxDuration + TimeSpan.FromSeconds(60)).TotalSeconds * Stopwatch.Frequency);
            EndPoint remote = new IPEndPoint(IPAddress.Any, 0);
            while (!_stopReceiving)
            {
                int n;
                SocketError error = SocketError.Success;
                int ifindex = 0;
                if (_trackInterfaces)
                {
                    try
                    {
                        var flags = SocketFlags.None;
                        n = _receiveSocket.ReceiveMessageFrom(buffer, 0, buffer.Length, ref flags, ref remote, out IPPacketInformation info);
                        ifindex = info.Interface;
                    }
                    catch (SocketException e)
                    {
                        (n, error) = (0, e.SocketErrorCode);
                    }
                }
                else
                    n = _receiveSocket.Receive(buffer, 0, buffer.Length, SocketFlags.None, out error);
                if (error != SocketError.Success)
                {
                    if (error is SocketError.TimedOut or SocketError.WouldBlock or SocketError.Interrupted
                        or SocketError.ConnectionRefused or SocketError.ConnectionReset)
                    {
                        // Poll tick (or a stray ICMP error): look at the stop flag and the bound again.
                        if (Stopwatch.GetTimestamp() > hardStop)
                            return; // nobody called Stop: do not read forever
                        continue;
                    }
                    if (_stopReceiving)
                        return;
                    throw new SocketException((int)error);
                }
                Record(buffer, n, ifindex);
            }
        }
        catch (ObjectDisposedException) when (_stopReceiving)
        {
        }
        catch (Exception e)
        {
            if (!_stopReceiving)
                _receiverFailure = e;
        }
    }

    private void Record(byte[] buffer, int length, int ifindex)
    {
        Volatile.Write(ref _arrivals, _arrivals + 1);
        if (length < MinPayloadBytes || BinaryPrimitives.ReadInt64BigEndian(buffer.AsSpan(8)) != _tag)
        {
            _foreign++;
            return;
        }
        long seq = BinaryPrimitives.ReadInt64BigEndian(buffer);
        if (seq < 0 || seq > _maxSequence)
        {
            _foreign++;
            return;
        }
        if (_trackInterfaces)
        {
            _byInterface[ifindex] = _byInterface.GetValueOrDefault(ifindex) + 1;
            if (ifindex != _lastIfindex)
                lock (_pathChanges)
                    _pathChanges.Add(new PathChange(seq, ifindex, Stopwatch.GetTimestamp()));
            _lastIfindex = ifindex;
        }
        long word = seq >> 6;
        if (word >= _seen.Length)
        {
            long size = _seen.Length;
            while (size <= word)
                size *= 2;
            Array.Resize(ref _seen, (int)Math.Min(size, Array.MaxLength));
        }
        ulong bit = 1UL << (int)(seq & 63);
        if ((_seen[word] & bit) != 0)
        {
            _duplicates++;
            return;
        }
        _seen[word] |= bit;
        if (seq < _highest)
            _reordered++;
        else
            _highest = seq;
        Volatile.Write(ref _distinct, _distinct + 1);
    }

    /// <summary>The namespace's UDP RcvbufErrors and InErrors, from a thread inside it; null when unreadable.</summary>
    private static (long RcvbufErrors, long InErrors)? ReadReceiverSnmp(NetworkNamespace ns)
    {
        var counters = ReadUdpSnmp(ns);
        return counters is not null
               && counters.TryGetValue("RcvbufErrors", out long rcvbuf)
               && counters.TryGetValue("InErrors", out long inErrors)
            ? (rcvbuf, inErrors)
            : null;
    }

    private static long? ReadSenderSndbufErrors(NetworkNamespace ns)
    {
        var counters = ReadUdpSnmp(ns);
        return counters is not null && counters.TryGetValue("SndbufErrors", out long value) ? value : null;
    }

    /// <summary>The "Udp:" lines of <c>/proc/thread-self/net/snmp</c> in <paramref name="ns"/>.</summary>
    internal static Dictionary<string, long>? ReadUdpSnmp(NetworkNamespace ns)
    {
        try
        {
            string[] lines = ns.Run(() => File.ReadAllLines("/proc/thread-self/net/snmp"));
            string[] rows = lines.Where(l => l.StartsWith("Udp:", StringComparison.Ordinal)).ToArray();
            if (rows.Length < 2)
                return null;
            string[] names = rows[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string[] values = rows[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var result = new Dictionary<string, long>();
            for (int i = 1; i < Math.Min(names.Length, values.Length); i++)
                if (long.TryParse(values[i], out long v))
                    result[names[i]] = v;
            return result;
        }
        catch (Exception)
        {
            return null; // a diagnostic: never fail the stream for it (the namespace may be gone already)
        }
    }
}
