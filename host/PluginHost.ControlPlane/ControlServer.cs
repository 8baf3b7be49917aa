using PluginHost.Compose;
using PluginHost.Net;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PluginHost.Observe;
using PluginHost.Config;
using PluginHost.Hosting;
using PluginHost.Runtime;

namespace PluginHost.Control;

/// <summary>
/// The running host's local API: HTTP/JSON on a Unix socket (<c>RUNTIME/api/pluginhost.sock</c>), owner root,
/// mode 0600, or 0660 with the configured group. Nothing listens on a network address. Changes go
/// through the reconciler, so they are serialised with reloads.
/// </summary>
/// <remarks>
/// Bounded: at most <see cref="MaxConnections"/> connections, an idle one closed after <see cref="KeepAliveTimeout"/>,
/// request headers within <see cref="HeadersTimeout"/>, a body of at most <see cref="MaxBodyBytes"/>. Every error is
/// RFC 9457 problem details (<c>application/problem+json</c>: type, title, status, detail), whose detail reads
/// "verb object: cause"; no error has an empty body or a .NET exception's text.
/// </remarks>
public sealed partial class ControlServer : IAsyncDisposable
{
    /// <summary>The API's JSON, both ways: the host's one convention (<see cref="HostJson"/>).</summary>
    public static JsonSerializerOptions Json => HostJson.Options;

    /// <summary>Connections open at once; more are closed as soon as they are accepted.</summary>
    public const int MaxConnections = 1024;

    /// <summary>A connection with no request in progress is closed after this long.</summary>
    public static readonly TimeSpan KeepAliveTimeout = TimeSpan.FromSeconds(10);

    /// <summary>A request's headers must have arrived this long after its first byte.</summary>
    public static readonly TimeSpan HeadersTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The largest request body (a runtime command is a few hundred bytes).</summary>
    public const long MaxBodyBytes = 1 << 20;

    /// <summary>Values echoed in an error are cut to this many characters.</summary>
    private const int EchoLimit = 200;

    private const string ProblemContentType = "application/problem+json";

    private static readonly string[] CommandFields = ["noun", "verb", "arguments", "pipeline", "stage", "stats"];

    private readonly WebApplication _app;

    private ControlServer(WebApplication app) => _app = app;

    public static async Task<ControlServer> StartAsync(HostConfig config, Reconciler reconciler, HostEngine engine, ILoggerFactory loggers)
    {
        string socket = config.ControlSocket;
        string dir = Path.GetDirectoryName(socket)!;
        // The directory is private before the socket exists, so there is no moment the socket is open to all.
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | (config.ApiGroup is null ? 0 : UnixFileMode.GroupRead | UnixFileMode.GroupExecute));
        if (File.Exists(socket))
            File.Delete(socket); // left by a host that died

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggers);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxConcurrentConnections = MaxConnections;
            k.Limits.MaxConcurrentUpgradedConnections = 0;
            k.Limits.KeepAliveTimeout = KeepAliveTimeout;
            k.Limits.RequestHeadersTimeout = HeadersTimeout;
            k.Limits.MaxRequestBodySize = MaxBodyBytes;
            k.AddServerHeader = false;
            k.ListenUnixSocket(socket);
        });
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            HostJson.Apply(o.SerializerOptions);
            o.SerializerOptions.WriteIndented = true;
        });
        var app = builder.Build();
        var log = loggers.CreateLogger<ControlServer>();
        app.Use((context, next) => Problems(context, next, log));
        Map(app, config, reconciler, engine, log);
        await app.StartAsync();

        File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite
            | (config.ApiGroup is null ? 0 : UnixFileMode.GroupRead | UnixFileMode.GroupWrite));
        if (config.ApiGroup is not null)
        {
            Ownership.SetGroup(dir, config.ApiGroup);
            Ownership.SetGroup(socket, config.ApiGroup);
        }
        return new ControlServer(app);
    }

    private static void Map(WebApplication app, HostConfig config, Reconciler reconciler, HostEngine engine, ILogger log)
    {
        string runtime = config.RuntimeDirectory;
        app.MapGet("/v1/status", () => Results.Json(new { pipelines = StatusReport.Status(runtime), reloads = ReloadHistory.Load(runtime) }, Json));
        app.MapGet("/v1/stats", () => Results.Json(StatusReport.Stats(runtime), Json));
        // Read while a change runs on the reconciler: never queued behind it.
        app.MapGet("/v1/progress", () => Results.Json(engine.Progress.Current, Json));
        app.MapGet("/v1/pipelines/{name}", (string name) =>
        {
            // Only a pipeline name can name a state file: nothing else reaches the file system.
            var state = PipelineName().IsMatch(name) ? Datapath.PipelineState.Load(runtime, name) : null;
            return state is null
                ? Problem(404, $"show pipeline {Cut(name)}: no such pipeline")
                : Results.Json(new { state, stats = CounterReader.ReadPinned(state) }, Json);
        });
        app.MapGet("/v1/plugins", () => Guard("list plugins", log, async () => Results.Json(await reconciler.InvokeAsync(e => e.ListPlugins()), Json)));
        app.MapPost("/v1/reload", () => Guard("reload", log, async () =>
        {
            var watch = Stopwatch.StartNew();
            var results = await reconciler.InvokeAsync(e => e.Reload(reconciler.ConfigPath));
            return Results.Json(new { results, milliseconds = watch.Elapsed.TotalMilliseconds }, Json);
        }, failed: "reload failed, the running datapath is unchanged: "));
        app.MapPost("/v1/commands", async (HttpContext context) =>
        {
            var (request, problem) = await ReadCommand(context);
            return request is null
                ? problem!
                : await Guard("run command", log, async () => Results.Json(await reconciler.InvokeAsync(e => e.RunCommand(request)), Json));
        });
        // Everything else: a known path with another method (405, with Allow), or no such endpoint (404).
        app.MapFallback("{*path}", (HttpContext context) =>
        {
            string path = context.Request.Path.Value ?? "";
            string action = $"route request {context.Request.Method} {Cut(path)}";
            if (AllowedMethod(path) is { } allowed)
            {
                context.Response.Headers.Allow = allowed;
                return Problem(405, $"{action}: method not allowed (allowed: {allowed})");
            }
            return Problem(404, $"{action}: no such endpoint " +
                                "(the API serves GET /v1/status, /v1/stats, /v1/progress, /v1/pipelines/NAME, /v1/plugins; POST /v1/reload, /v1/commands)");
        });
    }

    private static string? AllowedMethod(string path) => path.TrimEnd('/').ToLowerInvariant() switch
    {
        "/v1/status" or "/v1/stats" or "/v1/progress" or "/v1/plugins" => "GET",
        "/v1/reload" or "/v1/commands" => "POST",
        var p when p.StartsWith("/v1/pipelines/", StringComparison.Ordinal) && p.Count(c => c == '/') == 3 => "GET",
        _ => null,
    };

    // A failure the host expects keeps its message ("verb object: cause"); anything else is a bug: logged with its
    // stack, and the caller gets a message that names the call, not the exception's text.
    private static async Task<IResult> Guard(string action, ILogger log, Func<Task<IResult>> work, string failed = "")
    {
        try
        {
            return await work();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return e switch
            {
                CommandException or ConfigException => Problem(400, failed + e.Message),
                HostException or IOException or UnauthorizedAccessException => Problem(409, failed + e.Message),
                OperationCanceledException => Problem(503, $"{action}: the host is stopping"),
                _ => Internal(log, action, e),
            };
        }
    }

    private static IResult Internal(ILogger log, string action, Exception e)
    {
        LogInternalError(log, action, e);
        return Problem(500, $"{action}: internal error (see the host's log)");
    }

    // Errors that arise outside an endpoint (a body over the limit, a body that stalls, a method the path does not
    // take, a bug) get problem details too: no error leaves with an empty body.
    private static async Task Problems(HttpContext context, RequestDelegate next, ILogger log)
    {
        string action = $"{context.Request.Method} {Cut(context.Request.Path.Value ?? "")}";
        try
        {
            await next(context);
        }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            await Problem(e.StatusCode, e.StatusCode switch
            {
                413 => $"read request {action}: body larger than {MaxBodyBytes} bytes",
                408 => $"read request {action}: the body did not arrive in time",
                _ => $"read request {action}: malformed request",
            }).ExecuteAsync(context);
            return;
        }
        catch (Exception e) when (e is not OutOfMemoryException && !context.Response.HasStarted)
        {
            await Internal(log, action, e).ExecuteAsync(context);
            return;
        }
        var response = context.Response;
        if (!response.HasStarted && response.StatusCode >= 400 && response.ContentType is null)
            await Problem(response.StatusCode, response.StatusCode == 405
                ? $"route request {action}: method not allowed (allowed: {response.Headers.Allow})"
                : $"route request {action}: {ReasonPhrases.GetReasonPhrase(response.StatusCode).ToLowerInvariant()}").ExecuteAsync(context);
    }

    /// <summary>RFC 9457 problem details: <c>about:blank</c>, so the title is the status's reason phrase; the detail says what and why.</summary>
    internal static IResult Problem(int status, string detail) =>
        Results.Json(new ProblemDetails("about:blank", ReasonPhrases.GetReasonPhrase(status), status, detail), Json, ProblemContentType, status);

    internal sealed record ProblemDetails(string Type, string Title, int Status, string Detail);

    // The request of POST /v1/commands, read by hand: every way it can be wrong gets its own message.
    private static async Task<(CommandRequest? Request, IResult? Problem)> ReadCommand(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted); // over MaxBodyBytes: BadHttpRequestException (413)
        var body = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        if (body.Span.Trim(" \t\r\n"u8).IsEmpty)
            return (null, Problem(400, "parse request: the body is empty (expected a JSON object with noun, verb and arguments)"));
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            return (null, Problem(400, $"parse request: invalid JSON at byte {ByteOffset(body.Span, e)}: {JsonReason(e)}"));
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return (null, Problem(400, $"run command: the request must be an object (got {Kind(root)})"));
            string? noun = null, verb = null, pipeline = null;
            int? stage = null;
            bool stats = false;
            Dictionary<string, string>? arguments = null;
            foreach (var field in root.EnumerateObject())
            {
                string name = field.Name.ToLowerInvariant();
                var value = field.Value;
                string? wrong = name switch
                {
                    "noun" => Text(value, required: true, out noun),
                    "verb" => Text(value, required: true, out verb),
                    "pipeline" => Text(value, required: false, out pipeline),
                    "stage" => value.ValueKind == JsonValueKind.Null ? null
                        : value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int s) && s >= 0 ? Set(out stage, s) : $"a stage index (got {Kind(value)})",
                    "arguments" => Arguments(value, out arguments),
                    "stats" => value.ValueKind is JsonValueKind.True or JsonValueKind.False ? Flag(out stats, value.GetBoolean()) : $"true or false (got {Kind(value)})",
                    _ => "",
                };
                if (wrong == "")
                    return (null, Problem(400, $"run command: unknown field '{Cut(field.Name)}' (expected one of: {string.Join(", ", CommandFields)})"));
                if (wrong is not null)
                    return (null, Problem(400, $"run command: {Cut(field.Name)} must be {wrong}"));
            }
            if (noun is null || verb is null)
                return (null, Problem(400, $"run command: {(noun is null ? "noun" : "verb")} is required"));
            if (arguments is null)
                return (null, Problem(400, "run command: arguments must be an object (got nothing)"));
            return (new CommandRequest(noun, verb, arguments, pipeline, stage) { Stats = stats }, null);
        }
    }

    private static string? Flag(out bool target, bool value)
    {
        target = value;
        return null;
    }

    private static string? Set(out int? target, int value)
    {
        target = value;
        return null;
    }

    private static string? Text(JsonElement value, bool required, out string? text)
    {
        text = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
        if (value.ValueKind == JsonValueKind.String && (!required || text!.Length > 0))
            return null;
        if (value.ValueKind == JsonValueKind.Null && !required)
            return null;
        return required ? $"a non-empty string (got {Kind(value)})" : $"a string or null (got {Kind(value)})";
    }

    private static string? Arguments(JsonElement value, out Dictionary<string, string>? arguments)
    {
        arguments = null;
        if (value.ValueKind != JsonValueKind.Object)
            return $"an object (got {Kind(value)})";
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var argument in value.EnumerateObject())
        {
            if (argument.Value.ValueKind != JsonValueKind.String)
                return $"an object of strings (arguments.{Cut(argument.Name)} is {Kind(argument.Value)})";
            result[argument.Name] = argument.Value.GetString()!;
        }
        arguments = result;
        return null;
    }

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {Cut(value.GetRawText())}",
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        _ => "null",
    };

    // JsonException gives a line (0-based) and a byte within it; the message names the byte in the whole body.
    private static long ByteOffset(ReadOnlySpan<byte> body, JsonException e)
    {
        long line = e.LineNumber ?? 0, offset = 0;
        for (; line > 0 && offset < body.Length; offset++)
            if (body[(int)offset] == (byte)'\n')
                line--;
        return offset + (e.BytePositionInLine ?? 0);
    }

    // "'}' is an invalid start of a value. LineNumber: 0 | BytePositionInLine: 12." → "'}' is an invalid start of a value"
    private static string JsonReason(JsonException e)
    {
        // What follows these is about the reader, not the request.
        string message = e.Message.Replace(" which is not supported in this mode", "", StringComparison.Ordinal);
        foreach (var marker in (string[])[" LineNumber:", " Path:", " Change the reader options"])
            if (message.IndexOf(marker, StringComparison.Ordinal) is int at and >= 0)
                message = message[..at];
        return Cut(message.TrimEnd().TrimEnd('.'));
    }

    private static string Cut(string value) => value.Length <= EchoLimit ? value : value[..EchoLimit] + "...";

    [GeneratedRegex("^[a-z][a-z0-9-]{0,31}$")]
    private static partial Regex PipelineName();

    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "control API: {Action} failed with an unexpected error")]
    private static partial void LogInternalError(ILogger log, string action, Exception error);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
