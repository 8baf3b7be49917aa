using System.Net;
using System.Net.Sockets;
using PluginHost.Lab;
using PluginHost.TestSupport;

namespace PluginHost.Tests.Support;

/// <summary>A TCP port that accepts connections inside a namespace (and closes each at once), for TCP probes.</summary>
public sealed class TcpAcceptor : IDisposable
{
    private readonly Socket _listener;
    private readonly Thread _thread;

    public TcpAcceptor(NetworkNamespace ns, IPEndPoint endpoint)
    {
        _listener = TcpStream.Listen(ns, endpoint, backlog: 64);
        _thread = new Thread(() =>
        {
            try
            {
                while (true)
                    _listener.Accept().Dispose();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // closed: the test is over
            }
        }) { IsBackground = true, Name = $"accept {endpoint}" };
        _thread.Start();
    }

    public void Dispose()
    {
        _listener.Dispose();
        _thread.Join(TimeSpan.FromSeconds(2));
    }
}
