using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PluginHost.Observe;

/// <summary>
/// The one JSON convention of every <c>--json</c> output, every API request and response and the files in the
/// runtime directory: camelCase property names, enum values as camelCase strings, counters as objects of
/// camelCase counter names (<see cref="CounterRow{TCounter}"/>). docs/JSON.md shows each shape.
/// </summary>
public static class HostJson
{
    /// <summary>Indented: CLI output, API responses, the runtime directory's files.</summary>
    public static readonly JsonSerializerOptions Options = Create(indented: true);

    /// <summary>One document per line (<c>stats --watch --json</c>).</summary>
    public static readonly JsonSerializerOptions Lines = Create(indented: false);

    /// <summary>Set the API server's options to the convention (it starts from its own defaults).</summary>
    public static void Apply(JsonSerializerOptions options)
    {
        options.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        options.PropertyNameCaseInsensitive = true;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
        options.Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping; // quotes in messages stay readable
    }

    private static JsonSerializerOptions Create(bool indented)
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = indented };
        Apply(options);
        return options;
    }
}
