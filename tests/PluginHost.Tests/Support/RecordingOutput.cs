using Xunit.Abstractions;

namespace PluginHost.Tests.Support;

/// <summary>Forwards to the test's log and keeps the lines, so the test can check what the host logged.</summary>
public sealed class RecordingOutput(ITestOutputHelper inner) : ITestOutputHelper
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
                return _lines.ToList();
        }
    }

    public void WriteLine(string message)
    {
        lock (_lines)
            _lines.Add(message);
        inner.WriteLine(message);
    }

    public void WriteLine(string format, params object[] args) => WriteLine(string.Format(System.Globalization.CultureInfo.InvariantCulture, format, args));
}
