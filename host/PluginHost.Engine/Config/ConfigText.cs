using System.Text;

namespace PluginHost.Config;

/// <summary>
/// Values echoed in errors, cut: a configuration or API value may be megabytes long (a fuzzer's scalar, a pasted file),
/// and an error repeats it into the log, the API's answer and the reload history.
/// </summary>
public static class ConfigText
{
    /// <summary>How many characters of a value an error shows.</summary>
    public const int MaxShown = 200;

    /// <summary>An error message at most this long (its values already cut); the rest is cut too.</summary>
    public const int MaxMessage = 2_000;

    /// <summary><paramref name="value"/>, or its first <see cref="MaxShown"/> characters and "…" (and how long it was).</summary>
    public static string Cut(string? value, int max = MaxShown)
    {
        if (value is null || value.Length <= max)
            return value ?? "";
        int end = char.IsHighSurrogate(value[max - 1]) ? max - 1 : max;
        return $"{value[..end]}… ({value.Length:N0} characters)";
    }

    /// <summary>
    /// A message with every quoted value ('…') longer than <see cref="MaxShown"/> cut, then the whole cut to
    /// <paramref name="maxMessage"/>: messages written elsewhere (plugins, runtime commands) quote values this way.
    /// </summary>
    public static string CutQuoted(string message, int maxMessage = MaxMessage)
    {
        if (message.Length <= MaxShown)
            return message;
        var result = new StringBuilder(Math.Min(message.Length, maxMessage + 64));
        int at = 0;
        while (at < message.Length)
        {
            int open = message.IndexOf('\'', at);
            int close = open < 0 ? -1 : message.IndexOf('\'', open + 1);
            if (close < 0)
            {
                result.Append(message, at, message.Length - at);
                break;
            }
            result.Append(message, at, open + 1 - at).Append(Cut(message[(open + 1)..close])).Append('\'');
            at = close + 1;
        }
        return Cut(result.ToString(), maxMessage);
    }
}
