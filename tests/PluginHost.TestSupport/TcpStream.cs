using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace PluginHost.Lab;

/// <summary>What a <see cref="TcpStream"/> wrote and what the server read.</summary>
/// <param name="BytesSent">Bytes the client's send() accepted.</param>
/// <param name="BytesReceived">Bytes the server read, all matching the pattern up to the first mismatch.</param>
/// <param name="Reset">
/// The connection broke: a socket error on either side (reset, timeout...) or a byte that did not match the pattern.
/// </param>
/// <param name="Error">What went wrong (which side, which error), or null when the stream ended cleanly.</param>
/// <param name="Duration">From the connection being established to the end of writing.</param>
public sealed record TcpStreamResult(long BytesSent, long BytesReceived, bool Reset, string? Error, TimeSpan Duration)
{
    /// <summary>No reset, no error, and the server read to EOF exactly what the client wrote.</summary>
    public bool Ok => !Reset && Error is null && BytesReceived == BytesSent;

    /// <summary>True when the writer stopped by itself at the maximum duration.</summary>
    public bool TimedOut { get; init; }

    public override string ToString() =>
        $"sent {BytesSent} B, received {BytesReceived} B in {Duration.TotalSeconds:0.000} s" +
        (Reset ? ", RESET" : "") + (Error is null ? "" : $": {Error}");
}

/// <summary>
/// A steady TCP byte stream from a client in one namespace to a server in another, for "no connection broken
/// while X happens" tests. The client writes a deterministic pattern (byte i = <c>Pattern[i % 65521]</c>, a fixed
/// pseudo-random block of prime length) at a paced rate; the server reads, checks every byte, and counts.
/// <see cref="Stop"/> closes gracefully (client shutdown(SHUT_WR), server reads to EOF).
/// </summary>
public sealed class TcpStream : IDisposable
{
    /// <summary>Period of the byte pattern (a prime, so no write size lines up with it).</summary>
    public const int PatternLength = 65521;

    /// <summary>Default bound on how long the client writes when nobody stops it.</summary>
    public static readonly TimeSpan DefaultMaxDuration = TimeSpan.FromSeconds(120);

    /// <summary>How long a connect, a blocked send, or the server's wait for EOF may take.</summary>
    public static readonly TimeSpan IoTimeout = TimeSpan.FromSeconds(5);

    private static readonly byte[] Pattern = MakePattern();

    private readonly Socket? _listener; // null: the caller's listeners
    private readonly Socket _client;
    private readonly Socket _server;
    private readonly Thread _writer;
    private readonly Thread _reader;
    private readonly int _bytesPerSecond;
    private readonly TimeSpan _maxDuration;
    private readonly long _startTicks;
    private readonly object _gate = new();

    private volatile bool _stopWriting;
    private long _bytesSent;
    private long _bytesReceived;
    private long _endTicks = -1;
    private volatile bool _timedOut;
    private volatile bool _reset;
    private volatile string? _clientError;
    private volatile string? _serverError;
    private volatile bool _serverSawEof;
    private TcpStreamResult? _result;

    private TcpStream(Socket? listener, Socket client, Socket server, int bytesPerSecond, TimeSpan maxDuration)
    {
        _listener = listener;
        _client = client;
        _server = server;
        _bytesPerSecond = bytesPerSecond;
        _maxDuration = maxDuration;
        ClientEndPoint = (IPEndPoint)client.LocalEndPoint!;
        ServerEndPoint = (IPEndPoint)server.LocalEndPoint!;
        _startTicks = Stopwatch.GetTimestamp();
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = $"tcp stream client {ClientEndPoint}" };
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = $"tcp stream server {ServerEndPoint}" };
    }

    /// <summary>The client's end of the connection.</summary>
    public IPEndPoint ClientEndPoint { get; }

    /// <summary>The server's end of the connection.</summary>
    public IPEndPoint ServerEndPoint { get; }

    /// <summary>Which of the listeners given to <see cref="Start(NetworkNamespace, IPAddress, IReadOnlyList{Socket}, IPEndPoint, int, TimeSpan?)"/> accepted it (0 with one).</summary>
    public int AcceptedBy { get; private init; }

    /// <summary>Bytes written so far.</summary>
    public long BytesSent => Volatile.Read(ref _bytesSent);

    /// <summary>Bytes read and verified so far.</summary>
    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    /// <summary>True once either side saw a socket error or a pattern mismatch.</summary>
    public bool Reset => _reset;

    /// <summary>A listening TCP socket on <paramref name="endpoint"/>, made inside <paramref name="ns"/> (address reuse on).</summary>
    public static Socket Listen(NetworkNamespace ns, IPEndPoint endpoint, int backlog) => ns.Run(() =>
    {
        var s = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            s.Bind(endpoint);
            s.Listen(backlog);
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    });

    /// <summary>
    /// Listens on <paramref name="serverEndpoint"/> inside <paramref name="serverNs"/>, connects to it from
    /// <paramref name="clientSource"/> (port 0) inside <paramref name="clientNs"/>, and starts writing
    /// <paramref name="bytesPerSecond"/> bytes per second until <see cref="Stop"/> or <paramref name="maxDuration"/>
    /// (default 120 s; then the client closes its side by itself).
    /// </summary>
    /// <exception cref="InvalidOperationException">The connection could not be established within <see cref="IoTimeout"/>.</exception>
    public static TcpStream Start(NetworkNamespace clientNs, IPAddress clientSource, NetworkNamespace serverNs,
        IPEndPoint serverEndpoint, int bytesPerSecond = 2_000_000, TimeSpan? maxDuration = null)
    {
        ArgumentNullException.ThrowIfNull(serverNs);
        ArgumentNullException.ThrowIfNull(serverEndpoint);
        Socket listener = Listen(serverNs, serverEndpoint, backlog: 1);
        try
        {
            return Connect(clientNs, clientSource, [listener], $"{serverEndpoint} ({serverNs.Name})", serverEndpoint, bytesPerSecond, maxDuration, owned: true);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>
    /// As the other overload, to one address served by several servers (backends behind a load balancer), each listening
    /// on <paramref name="serverEndpoint"/> with one of <paramref name="listeners"/> (see <see cref="Listen"/>): whichever the
    /// connection reaches accepts it (<see cref="AcceptedBy"/>). The listeners stay the caller's.
    /// </summary>
    public static TcpStream Start(NetworkNamespace clientNs, IPAddress clientSource, IReadOnlyList<Socket> listeners,
        IPEndPoint serverEndpoint, int bytesPerSecond = 2_000_000, TimeSpan? maxDuration = null)
    {
        ArgumentNullException.ThrowIfNull(listeners);
        ArgumentNullException.ThrowIfNull(serverEndpoint);
        ArgumentOutOfRangeException.ThrowIfZero(listeners.Count, nameof(listeners));
        return Connect(clientNs, clientSource, listeners, $"{serverEndpoint} ({listeners.Count} listeners)", serverEndpoint, bytesPerSecond, maxDuration, owned: false);
    }

    private static TcpStream Connect(NetworkNamespace clientNs, IPAddress clientSource, IReadOnlyList<Socket> listeners, string serverName,
        IPEndPoint serverEndpoint, int bytesPerSecond, TimeSpan? maxDuration, bool owned)
    {
        ArgumentNullException.ThrowIfNull(clientNs);
        ArgumentNullException.ThrowIfNull(clientSource);
        ArgumentOutOfRangeException.ThrowIfLessThan(bytesPerSecond, 1);
        TimeSpan max = maxDuration ?? DefaultMaxDuration;
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(max, TimeSpan.Zero, nameof(maxDuration));
        if (clientSource.AddressFamily != serverEndpoint.AddressFamily)
            throw new ArgumentException($"client {clientSource} and server {serverEndpoint} differ in address family");

        Socket? client = null;
        Socket? server = null;
        int acceptedBy = -1;
        try
        {
            client = clientNs.Run(() =>
            {
                var s = new Socket(clientSource.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    s.Bind(new IPEndPoint(clientSource, 0));
                    s.NoDelay = true;
                    return s;
                }
                catch
                {
                    s.Dispose();
                    throw;
                }
            });

            // Synchronous connect and accept on purpose: a .NET socket that ever ran an async operation is
            // switched to non-blocking mode for good, and its sync calls then cost far more CPU (measured: the
            // two stream threads took ~1.5 cores at 2 MB/s). SO_SNDTIMEO bounds a blocking connect on Linux;
            // the kernel completes the handshake from the listen backlog, so accept comes after.
            // The socket belongs to the client namespace for life: connecting from this thread is fine.
            try
            {
                client.SendTimeout = (int)IoTimeout.TotalMilliseconds;
                client.Connect(serverEndpoint);
                var ready = listeners.ToList();
                Socket.Select(ready, null, null, IoTimeout);
                if (ready.Count == 0)
                    throw new TimeoutException($"accept timed out after {IoTimeout.TotalSeconds:0} s");
                acceptedBy = listeners.ToList().IndexOf(ready[0]);
                server = ready[0].Accept();
            }
            catch (Exception e) when (e is SocketException or TimeoutException)
            {
                string why = e is SocketException { SocketErrorCode: SocketError.InProgress or SocketError.WouldBlock or SocketError.TimedOut }
                    ? $"timed out after {IoTimeout.TotalSeconds:0} s"
                    : e.Message;
                throw new InvalidOperationException(
                    $"tcp stream: connect {clientSource} ({clientNs.Name}) -> {serverName}: {why}", e);
            }
            // Sync calls from here on; timeouts make a stalled connection an error instead of a hang.
            client.SendTimeout = (int)IoTimeout.TotalMilliseconds;
            server.ReceiveTimeout = (int)IoTimeout.TotalMilliseconds;

            var stream = new TcpStream(owned ? listeners[0] : null, client, server, bytesPerSecond, max) { AcceptedBy = acceptedBy };
            stream._reader.Start();
            stream._writer.Start();
            return stream;
        }
        catch
        {
            server?.Dispose();
            client?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Stops writing, shuts the client's sending side, waits (at most <see cref="IoTimeout"/>) for the server to
    /// read to EOF, closes everything and returns the tally. Idempotent: later calls return the same result.
    /// </summary>
    public TcpStreamResult Stop()
    {
        lock (_gate)
        {
            if (_result is null)
            {
                _stopWriting = true;
                _writer.Join(); // bounded: a blocked send times out after IoTimeout
                // The writer shut down the sending side on its way out; the reader ends at EOF or an error.
                if (!_reader.Join(IoTimeout + TimeSpan.FromSeconds(1)))
                {
                    _serverError ??= $"server did not see EOF within {IoTimeout.TotalSeconds:0} s";
                    _server.Dispose();
                    _reader.Join(TimeSpan.FromSeconds(1));
                }
                _server.Dispose();
                _client.Dispose();
                _listener?.Dispose();

                long sent = Volatile.Read(ref _bytesSent);
                long received = Volatile.Read(ref _bytesReceived);
                string? error = _clientError is not null && _serverError is not null
                    ? $"{_clientError}; {_serverError}"
                    : _clientError ?? _serverError;
                if (error is null && !_serverSawEof)
                    error = "server did not see EOF";
                if (error is null && received != sent)
                    error = $"server received {received} of {sent} bytes";
                long end = _endTicks < 0 ? Stopwatch.GetTimestamp() : _endTicks;
                _result = new TcpStreamResult(sent, received, _reset, error,
                    TimeSpan.FromSeconds((end - _startTicks) / (double)Stopwatch.Frequency))
                {
                    TimedOut = _timedOut,
                };
            }
            return _result;
        }
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
            // Dispose never throws.
        }
    }

    private void WriteLoop()
    {
        long frequency = Stopwatch.Frequency;
        long maxTicks = (long)(_maxDuration.TotalSeconds * frequency);
        // Write when at least ~1 ms' worth is due, at most ~5 ms' worth per send(). Without the lower bound
        // the loop never sleeps: a few bytes are always due again by the time send() returns, and the
        // stream turns into a CPU-hungry flood of 20-byte segments.
        int maxChunk = Math.Clamp(_bytesPerSecond / 200, 1, 64 * 1024);
        int minChunk = Math.Clamp(_bytesPerSecond / 1000, 1, maxChunk);
        long maxDebt = Math.Max(maxChunk, _bytesPerSecond / 10);
        long scheduleBase = 0; // bytes due at scheduleStart
        long scheduleStart = _startTicks;
        try
        {
            while (!_stopWriting)
            {
                long now = Stopwatch.GetTimestamp();
                if (now - _startTicks >= maxTicks)
                {
                    _timedOut = true;
                    break;
                }
                long sent = Volatile.Read(ref _bytesSent);
                long due = scheduleBase + (long)((now - scheduleStart) * (double)_bytesPerSecond / frequency);
                if (due - sent > maxDebt)
                {
                    // Fell far behind (a stalled send): restart the schedule rather than burst to catch up.
                    scheduleBase = sent;
                    scheduleStart = now;
                    due = sent + maxChunk;
                }
                if (due - sent < minChunk)
                {
                    Thread.Sleep(1);
                    continue;
                }
                int length = (int)Math.Min(due - sent, maxChunk);
                int at = (int)(sent % PatternLength);
                length = Math.Min(length, PatternLength - at); // one contiguous slice of the pattern
                int n = _client.Send(Pattern, at, length, SocketFlags.None, out SocketError error);
                if (error != SocketError.Success)
                {
                    if (error == SocketError.Interrupted)
                        continue;
                    _reset = true;
                    _clientError = $"client send: {error} after {sent} bytes";
                    break;
                }
                Volatile.Write(ref _bytesSent, sent + n);
            }
        }
        catch (Exception e)
        {
            _reset = _reset || e is SocketException;
            _clientError ??= $"client: {e.GetType().Name}: {e.Message}";
        }
        finally
        {
            Volatile.Write(ref _endTicks, Stopwatch.GetTimestamp());
            try
            {
                _client.Shutdown(SocketShutdown.Send); // FIN after the last byte: the server reads to EOF
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_clientError is null)
                {
                    _reset = _reset || e is SocketException;
                    _clientError = $"client shutdown: {e.Message}";
                }
            }
        }
    }

    private void ReadLoop()
    {
        byte[] buffer = new byte[64 * 1024];
        long offset = 0;
        try
        {
            while (true)
            {
                int n = _server.Receive(buffer, 0, buffer.Length, SocketFlags.None, out SocketError error);
                if (error != SocketError.Success)
                {
                    if (error == SocketError.Interrupted)
                        continue;
                    if (error is SocketError.TimedOut or SocketError.WouldBlock && !_stopWriting && _writer.IsAlive)
                        continue; // the client is pacing slowly (or stalled: its send times out and says so)
                    _reset = true;
                    _serverError = $"server receive: {error} after {offset} bytes";
                    return;
                }
                if (n == 0)
                {
                    _serverSawEof = true;
                    return;
                }
                long mismatch = Verify(buffer.AsSpan(0, n), offset);
                if (mismatch >= 0)
                {
                    Volatile.Write(ref _bytesReceived, offset + mismatch);
                    _reset = true;
                    _serverError = $"server: pattern mismatch at byte {offset + mismatch}";
                    return;
                }
                offset += n;
                Volatile.Write(ref _bytesReceived, offset);
            }
        }
        catch (Exception e)
        {
            _reset = _reset || e is SocketException;
            _serverError ??= $"server: {e.GetType().Name}: {e.Message}";
        }
    }

    /// <summary>Index in <paramref name="data"/> of the first byte off the pattern, or -1.</summary>
    private static long Verify(ReadOnlySpan<byte> data, long offset)
    {
        int checkedBytes = 0;
        while (checkedBytes < data.Length)
        {
            int at = (int)((offset + checkedBytes) % PatternLength);
            int length = Math.Min(data.Length - checkedBytes, PatternLength - at);
            ReadOnlySpan<byte> got = data.Slice(checkedBytes, length);
            ReadOnlySpan<byte> want = Pattern.AsSpan(at, length);
            if (!got.SequenceEqual(want))
            {
                int i = 0;
                while (got[i] == want[i])
                    i++;
                return checkedBytes + i;
            }
            checkedBytes += length;
        }
        return -1;
    }

    private static byte[] MakePattern()
    {
        var pattern = new byte[PatternLength];
        uint x = 0x9E3779B9;
        for (int i = 0; i < pattern.Length; i++)
        {
            // xorshift32: fixed, so both ends (and a test reading a capture) agree without sharing state.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            pattern[i] = (byte)(x >> 24);
        }
        return pattern;
    }
}
