using System.Net;
using System.Net.Sockets;
using System.Runtime.ExceptionServices;

namespace PluginHost.Lab;

/// <summary>
/// Counts UDP datagrams per source address. The socket is created inside a namespace (a socket
/// belongs to the netns it was created in for life); a background thread reads it.
/// </summary>
internal sealed class UdpReceiver : IDisposable
{
    private const int PollMilliseconds = 200;

    private readonly Socket _socket;
    private readonly Thread _reader;
    private readonly Dictionary<IPAddress, int> _counts = new();
    private readonly object _gate = new();
    private volatile bool _stopping;
    private int _total;
    private ExceptionDispatchInfo? _failure;
    private Dictionary<IPAddress, int>? _result;

    private UdpReceiver(Socket socket, string nsName)
    {
        _socket = socket;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = $"udp receiver {nsName} {LocalEndPoint}" };
    }

    /// <summary>The bound address and port (the real port when <c>bind</c> used port 0).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Datagrams received so far, all sources together.</summary>
    public int Total => Volatile.Read(ref _total);

    /// <summary>Binds a UDP socket to <paramref name="bind"/> inside <paramref name="ns"/> and starts counting.</summary>
    public static UdpReceiver Start(NetworkNamespace ns, IPEndPoint bind)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(bind);
        Socket socket = ns.Run(() =>
        {
            var s = new Socket(bind.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                s.ReceiveBufferSize = 1 << 20; // bursts of small datagrams must not overflow it
                s.ReceiveTimeout = PollMilliseconds;
                s.Bind(bind);
                return s;
            }
            catch
            {
                s.Dispose();
                throw;
            }
        });
        var receiver = new UdpReceiver(socket, ns.Name);
        receiver._reader.Start();
        return receiver;
    }

    /// <summary>Waits until at least <paramref name="total"/> datagrams arrived or the timeout passed.</summary>
    public bool WaitFor(int total, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Total < total)
        {
            if (DateTime.UtcNow >= deadline || _stopping)
                return Total >= total;
            Thread.Sleep(10);
        }
        return true;
    }

    /// <summary>Stops reading (within about a second), closes the socket and returns the count per source address.</summary>
    public Dictionary<IPAddress, int> Stop()
    {
        lock (_gate)
        {
            if (_result is null)
            {
                _stopping = true;
                _reader.Join(TimeSpan.FromSeconds(2));
                _socket.Dispose();
                _reader.Join(TimeSpan.FromSeconds(1));
                lock (_counts)
                    _result = new Dictionary<IPAddress, int>(_counts);
            }
        }
        _failure?.Throw();
        return new Dictionary<IPAddress, int>(_result);
    }

    public void Dispose()
    {
        try
        {
            Stop();
        }
        catch (Exception)
        {
            // Dispose never throws; Stop reports reader failures.
        }
    }

    private void ReadLoop()
    {
        byte[] buffer = new byte[65536];
        EndPoint any = new IPEndPoint(
            LocalEndPoint.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!_stopping)
        {
            try
            {
                EndPoint from = any;
                _socket.ReceiveFrom(buffer, SocketFlags.None, ref from);
                IPAddress source = ((IPEndPoint)from).Address;
                lock (_counts)
                    _counts[source] = _counts.GetValueOrDefault(source) + 1;
                Interlocked.Increment(ref _total);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock
                                             or SocketError.Interrupted)
            {
                // Poll tick: look at _stopping again.
            }
            catch (Exception e) when ((e is ObjectDisposedException or SocketException) && _stopping)
            {
                return;
            }
            catch (Exception e)
            {
                _failure = ExceptionDispatchInfo.Capture(e);
                return;
            }
        }
    }
}
