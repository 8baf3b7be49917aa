namespace PluginHost.Interop;

/// <summary>A failed kernel or libbpf call. Message reads "verb object: cause".</summary>
public class BpfException : HostException
{
    public BpfException(string action, int errno, string? remedy = null)
        : base(Format(action, errno, remedy)) => Errno = errno;

    public BpfException(string message) : base(message) { }

    /// <summary>The positive errno, 0 when none.</summary>
    public int Errno { get; }

    private static string Format(string action, int errno, string? remedy)
    {
        errno = Math.Abs(errno);
        string text = $"{action}: {Libc.ErrorText(errno).ToLowerInvariant()}";
        remedy ??= errno switch
        {
            1 => "need root or CAP_BPF and CAP_NET_ADMIN",
            _ => null,
        };
        return remedy is null ? text : $"{text} ({remedy})";
    }
}
