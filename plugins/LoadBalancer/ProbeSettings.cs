using System.Globalization;
using PluginHost.Contract;

namespace PluginHost.Plugins.LoadBalancer;

/// <summary>A backend's health probe as settings give it (the host's <see cref="Probe"/> without a name and a target).</summary>
internal sealed record BackendProbe(ProbeKind Kind, int Port, TimeSpan Interval, TimeSpan Timeout, int Failures, int Successes);

/// <summary>
/// Reads a <c>probe</c> setting: <c>icmp</c>, <c>tcp/PORT</c>, <c>none</c>, or a mapping with <c>kind</c>, <c>port</c>,
/// <c>interval</c>, <c>timeout</c>, <c>failures</c> and <c>successes</c>. The limits are the host's (PLUGINS.md, "Health
/// probes"), checked here so the operator gets the field and line rather than a stage-wide refusal.
/// </summary>
internal static class ProbeSettings
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(1), DefaultTimeout = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(100), MaxInterval = TimeSpan.FromHours(1);
    public static readonly TimeSpan MinTimeout = TimeSpan.FromMilliseconds(10);
    public const int DefaultFailures = 3, DefaultSuccesses = 2, MaxCount = 100;

    private const string Forms = "expected icmp, tcp/PORT, none, or a mapping with 'kind' and optionally 'port', 'interval', 'timeout', 'failures' and 'successes'";

    /// <summary>Whether the node parsed (<paramref name="probe"/> null: <c>none</c>); errors are reported at their field.</summary>
    public static bool TryParse(SettingsNode node, IStageContext context, out BackendProbe? probe)
    {
        probe = null;
        if (node.Kind == SettingsKind.Scalar)
            return TryParseShort(node, context, out probe);
        if (node.Kind != SettingsKind.Mapping)
        {
            context.Error(node, $"invalid probe: {Forms}");
            return false;
        }
        string[] fields = ["kind", "port", "interval", "timeout", "failures", "successes"];
        node.RejectUnknownKeys(context, fields);
        bool ok = node.Keys.All(fields.Contains); // a misspelt field must not leave a probe with defaults applied
        var kindNode = node["kind"];
        ProbeKind kind = ProbeKind.Icmp;
        if (kindNode.IsMissing)
        {
            context.Error(kindNode, "missing probe kind: expected icmp or tcp");
            ok = false;
        }
        else if (kindNode.Scalar == "tcp")
            kind = ProbeKind.Tcp;
        else if (kindNode.Scalar != "icmp")
        {
            context.Error(kindNode, $"invalid probe kind '{kindNode.Scalar}': expected icmp (echo) or tcp (connect to 'port')");
            ok = false;
        }
        int port = 0;
        var portNode = node["port"];
        if (kind == ProbeKind.Icmp && !portNode.IsMissing && ok)
        {
            context.Error(portNode, $"invalid probe port '{portNode.Scalar}': an icmp probe has no port (kind: tcp probes one)");
            ok = false;
        }
        else if (kind == ProbeKind.Tcp && !TryPort(portNode, context, out port))
            ok = false;
        ok &= TryDuration(node["interval"], context, "interval", DefaultInterval, MinInterval, MaxInterval, out var interval);
        var timeoutNode = node["timeout"];
        // Unless given, a timeout fits the interval: half of it, at most the host's default.
        var timeout = interval / 2 < DefaultTimeout ? interval / 2 : DefaultTimeout;
        if (!timeoutNode.IsMissing)
        {
            if (!TryDuration(timeoutNode, context, "timeout", timeout, MinTimeout, MaxInterval, out timeout))
                ok = false;
            else if (timeout >= interval)
            {
                context.Error(timeoutNode, $"invalid probe timeout '{timeoutNode.Scalar}': expected less than the interval ({Duration(interval)})");
                ok = false;
            }
        }
        ok &= TryCount(node["failures"], context, "failures", DefaultFailures, out int failures);
        ok &= TryCount(node["successes"], context, "successes", DefaultSuccesses, out int successes);
        probe = new BackendProbe(kind, port, interval, timeout, failures, successes);
        return ok;
    }

    // icmp, tcp/PORT or none, with the default timing (what the runtime verbs' --probe gives).
    private static bool TryParseShort(SettingsNode node, IStageContext context, out BackendProbe? probe)
    {
        probe = null;
        string text = node.Scalar ?? "";
        if (text == "none")
            return true;
        int port = 0;
        if (text != "icmp" && !(text.StartsWith("tcp/", StringComparison.Ordinal)
                                && int.TryParse(text.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and <= 65535))
        {
            context.Error(node, $"invalid probe '{text}': {Forms}");
            return false;
        }
        probe = new BackendProbe(port == 0 ? ProbeKind.Icmp : ProbeKind.Tcp, port, DefaultInterval, DefaultTimeout, DefaultFailures, DefaultSuccesses);
        return true;
    }

    private static bool TryPort(SettingsNode node, IStageContext context, out int port)
    {
        port = 0;
        if (node.IsMissing)
        {
            context.Error(node, "missing probe port: a tcp probe connects to a port (1 to 65535)");
            return false;
        }
        if (int.TryParse(node.Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and <= 65535)
            return true;
        context.Error(node, $"invalid probe port '{node.Scalar}': expected 1 to 65535");
        return false;
    }

    private static bool TryCount(SettingsNode node, IStageContext context, string what, int fallback, out int count)
    {
        count = fallback;
        if (node.IsMissing)
            return true;
        if (int.TryParse(node.Scalar, NumberStyles.None, CultureInfo.InvariantCulture, out count) && count is > 0 and <= MaxCount)
            return true;
        context.Error(node, $"invalid probe {what} '{node.Scalar}': expected a whole number from 1 to {MaxCount} (results in a row)");
        count = fallback;
        return false;
    }

    private static bool TryDuration(SettingsNode node, IStageContext context, string what, TimeSpan fallback, TimeSpan min, TimeSpan max, out TimeSpan value)
    {
        value = fallback;
        if (node.IsMissing)
            return true;
        if (ParseDuration(node.Scalar) is { } parsed && parsed >= min && parsed <= max)
        {
            value = parsed;
            return true;
        }
        context.Error(node, $"invalid probe {what} '{node.Scalar}': expected a duration from {Duration(min)} to {Duration(max)}, such as 200ms or 2s");
        return false;
    }

    /// <summary>"200ms", "1.5s", "2m", "1h"; null if not one.</summary>
    internal static TimeSpan? ParseDuration(string? text)
    {
        if (string.IsNullOrEmpty(text))
            return null;
        int digits = 0;
        while (digits < text.Length && (char.IsAsciiDigit(text[digits]) || text[digits] == '.'))
            digits++;
        if (!double.TryParse(text.AsSpan(0, digits), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n))
            return null;
        double ms = text[digits..] switch { "ms" => n, "s" => n * 1000, "m" => n * 60_000, "h" => n * 3_600_000, _ => double.NaN };
        return double.IsNaN(ms) || ms > TimeSpan.FromDays(1).TotalMilliseconds ? null : TimeSpan.FromMilliseconds(ms);
    }

    public static string Duration(TimeSpan t) => t.TotalHours >= 1 && t.TotalHours % 1 == 0 ? $"{t.TotalHours:0}h"
        : t.TotalSeconds >= 1 && t.TotalMilliseconds % 1000 == 0 ? $"{t.TotalSeconds:0}s" : $"{t.TotalMilliseconds:0.#}ms";
}
