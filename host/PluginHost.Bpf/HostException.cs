namespace PluginHost;

/// <summary>
/// A failure the host expects and can explain: bad configuration, a refused reload, a kernel or clang error,
/// an unreachable control socket. The message reads "verb object: cause", lower-case, with a remedy in
/// parentheses when there is one ("load program ph_entry: operation not permitted (need CAP_BPF)"), so the
/// CLI prints it as one line. Any other exception is a bug and keeps its stack trace.
/// </summary>
/// <remarks>
/// It lives in PluginHost.Bpf, the bottom of the host's stack, so that every host assembly can derive from it.
/// Plugins never see it: the contract assembly does not reference this one.
/// </remarks>
public class HostException : Exception
{
    public HostException(string message) : base(message) { }

    public HostException(string message, Exception? inner) : base(message, inner) { }
}
