using PluginHost.Compose;
using PluginHost.Net;
using System.Diagnostics;
using System.Text.Json;
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
public sealed class ControlServer : IAsyncDisposable
{
    /// <summary>The API's JSON, both ways: the host's one convention (<see cref="HostJson"/>).</summary>
    public static JsonSerializerOptions Json => HostJson.Options;

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
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socket));
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            HostJson.Apply(o.SerializerOptions);
            o.SerializerOptions.WriteIndented = true;
        });
        var app = builder.Build();
        Map(app, config, reconciler, engine);
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

    private static void Map(WebApplication app, HostConfig config, Reconciler reconciler, HostEngine engine)
    {
        string runtime = config.RuntimeDirectory;
        app.MapGet("/v1/status", () => Results.Json(new { pipelines = StatusReport.Status(runtime), reloads = ReloadHistory.Load(runtime) }, Json));
        app.MapGet("/v1/stats", () => Results.Json(StatusReport.Stats(runtime), Json));
        // Read while a change runs on the reconciler: never queued behind it.
        app.MapGet("/v1/progress", () => Results.Json(engine.Progress.Current, Json));
        app.MapGet("/v1/pipelines/{name}", (string name) =>
        {
            var state = Datapath.PipelineState.Load(runtime, name);
            return state is null
                ? Results.Json(new { error = $"show pipeline {name}: no such pipeline" }, Json, statusCode: 404)
                : Results.Json(new { state, stats = CounterReader.ReadPinned(state) }, Json);
        });
        app.MapGet("/v1/plugins", async () => Results.Json(await reconciler.InvokeAsync(e => e.ListPlugins()), Json));
        app.MapPost("/v1/reload", async () =>
        {
            var watch = Stopwatch.StartNew();
            try
            {
                var results = await reconciler.InvokeAsync(e =>
                {
                    return e.Reload(reconciler.ConfigPath);
                });
                return Results.Json(new { results, milliseconds = watch.Elapsed.TotalMilliseconds }, Json);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return Results.Json(new { error = $"reload failed, the running datapath is unchanged: {e.Message}" }, Json, statusCode: 409);
            }
        });
        app.MapPost("/v1/commands", async (CommandRequest request) =>
        {
            try
            {
                return Results.Json(await reconciler.InvokeAsync(e => e.RunCommand(request)), Json);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return Results.Json(new { error = e.Message }, Json, statusCode: e is CommandException or ConfigException ? 400 : 409);
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
