namespace PluginHost.Bench;

/// <summary>A benchmark could not run; the message reads "verb object: cause".</summary>
public sealed class BenchException(string message, Exception? inner = null) : Exception(message, inner);
