using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using PluginHost.Config;

namespace PluginHost.Control;

/// <summary>The CLI's side of the control socket.</summary>
public sealed class ControlClient : IDisposable
{
    private readonly HttpClient _http;

    private ControlClient(string socket)
    {
        Socket = socket;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, token) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), token);
                    return new NetworkStream(s, ownsSocket: true);
                }
                catch (SocketException e)
                {
                    s.Dispose();
                    throw new ControlException(e.SocketErrorCode switch
                    {
                        SocketError.AccessDenied => $"connect control socket {socket}: permission denied (run as root, or as a member of the group named by api.group)",
                        _ => $"connect control socket {socket}: {e.Message} (is `pluginhost run` running?)",
                    });
                }
            },
        };
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://pluginhost/"), Timeout = TimeSpan.FromMinutes(5) };
    }

    public string Socket { get; }

    /// <summary>A client when a host's socket exists in <paramref name="runtimeDirectory"/>, else null.</summary>
    public static ControlClient? TryCreate(string runtimeDirectory)
    {
        string socket = HostConfig.ControlSocketIn(runtimeDirectory);
        // A directory we may not read hides the socket: say "permission denied", not "no host".
        for (string? dir = Path.GetDirectoryName(socket); dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (!Directory.Exists(dir))
                continue;
            try
            {
                _ = Directory.EnumerateFileSystemEntries(dir).Any();
            }
            catch (UnauthorizedAccessException)
            {
                throw new ControlException($"connect control socket {socket}: permission denied on {dir} (run as root, or as a member of the group named by api.group)");
            }
            break;
        }
        return File.Exists(socket) ? new ControlClient(socket) : null;
    }

    public JsonElement Get(string path) => Send(new HttpRequestMessage(HttpMethod.Get, path));

    public JsonElement Post(string path, object? body = null) =>
        Send(new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body, options: ControlServer.Json) });

    private JsonElement Send(HttpRequestMessage request)
    {
        HttpResponseMessage response;
        try
        {
            response = _http.Send(request);
        }
        catch (HttpRequestException e) when (e.InnerException is ControlException c)
        {
            throw c;
        }
        catch (HttpRequestException e)
        {
            throw new ControlException($"call {request.RequestUri}: {e.Message}");
        }
        using (response)
        {
            JsonElement body;
            try
            {
                body = JsonDocument.Parse(response.Content.ReadAsStream()).RootElement.Clone();
            }
            catch (JsonException)
            {
                throw new ControlException($"call {request.RequestUri}: HTTP {(int)response.StatusCode} with a body that is not JSON");
            }
            if (!response.IsSuccessStatusCode)
                // Problem details (RFC 9457): the detail is the message; "error" is what hosts before them sent.
                throw new ControlException(body.ValueKind == JsonValueKind.Object && (body.TryGetProperty("detail", out var detail) || body.TryGetProperty("error", out detail))
                    && detail.ValueKind == JsonValueKind.String
                    ? detail.GetString()!
                    : $"call {request.RequestUri}: HTTP {(int)response.StatusCode}");
            return body;
        }
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>The control API refused a call or could not be reached.</summary>
public sealed class ControlException(string message) : HostException(message);
