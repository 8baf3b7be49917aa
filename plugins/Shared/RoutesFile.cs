using PluginHost.Contract;

namespace PluginHost.Plugins.Shared;

/// <summary>A routes file's prefixes: (network, length) → the line that gave it and its interface.</summary>
internal sealed class FileRoutes : Dictionary<(UInt128 Network, int Length), (int Line, int Ifindex)>
{
    public static readonly FileRoutes Empty = [];
}

/// <summary>
/// Routes files of either family, parsed once: while a file (path, size, time of writing) and the interfaces it names
/// are unchanged, the same table is handed back, so a runtime route change does not re-read a million lines (and the
/// host, seeing the same table, does not encode it again). A file with errors is not kept: it is read, and its errors
/// reported, every time.
/// </summary>
internal sealed class RoutesFileCache(RouteFamily family, string map)
{
    private const int MaxFiles = 8;
    private const int MaxReported = 20;

    private sealed record Parsed(long Length, DateTime Written,
        IReadOnlyDictionary<(string Name, System.Net.IPAddress? Via), (OutputInterface Result, int Lines)> Outputs, EntryTable Table, FileRoutes Lines);

    private readonly Dictionary<string, Parsed> _files = [];
    private readonly Lock _lock = new();
    private int _reads;

    /// <summary>How many times a file was read from disk (tests).</summary>
    public int Reads => Volatile.Read(ref _reads);

    /// <summary>The table and prefixes of the routes file <paramref name="node"/> names; problems are reported at the node.</summary>
    public (EntryTable? Table, FileRoutes Lines) Read(SettingsNode node, IStageContext context)
    {
        if (node.Kind != SettingsKind.Scalar)
        {
            context.Error(node, "expected the path of a routes file");
            return (null, FileRoutes.Empty);
        }
        // Taken before reading: a file rewritten while it is read is read again next time.
        var info = new FileInfo(context.ResolvePath(node.Scalar!));
        if (!info.Exists)
        {
            context.Error(node, $"routes file '{info.FullName}' does not exist");
            return (null, FileRoutes.Empty);
        }
        Parsed? last;
        lock (_lock)
            last = _files.GetValueOrDefault(info.FullName);
        if (last is not null && info.Length == last.Length && info.LastWriteTimeUtc == last.Written && Interfaces.Unchanged(last.Outputs, context, node))
        {
            Interfaces.Report(context, node, last.Outputs);
            return (last.Table, last.Lines);
        }
        var interfaces = new Interfaces(context, node);
        var lines = new FileRoutes();
        Interlocked.Increment(ref _reads);
        var (table, clean) = Parse(node, info.FullName, context, lines, interfaces);
        Interfaces.Report(context, node, interfaces.Resolved);
        if (clean)
            lock (_lock)
            {
                if (_files.Count >= MaxFiles)
                    _files.Clear();
                _files[info.FullName] = new Parsed(info.Length, info.LastWriteTimeUtc, interfaces.Resolved, table, lines);
            }
        return (table, lines);
    }

    // One route per line, "PREFIX INTERFACE [VIA]", '#' starts a comment; the same checks as settings. Every bad line is
    // reported with its line number (up to 20, then a count), and a bad file applies nothing. Parsed on spans: this runs
    // a million times for a full table. Returns the table and whether every line was good.
    private (EntryTable Table, bool Clean) Parse(SettingsNode node, string path, IStageContext context, FileRoutes lines, Interfaces interfaces)
    {
        var table = new EntryTable(map, family.KeyColumns, family.ValueColumns, capacity: 1024);
        int errors = 0, number = 0;
        void Bad(string message)
        {
            if (++errors <= MaxReported)
                context.Error(node, $"{path}:{number}: {message}");
        }
        Span<Range> parts = stackalloc Range[4];
        foreach (var raw in File.ReadLines(path))
        {
            number++;
            var line = raw.AsSpan();
            int hash = line.IndexOf('#');
            if (hash >= 0)
                line = line[..hash];
            int count = line.SplitAny(parts, " \t", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (count == 0)
                continue;
            if (count is < 2 or > 3)
            {
                Bad($"expected 'PREFIX INTERFACE [VIA]', got '{raw.Trim()}'");
                continue;
            }
            if (family.PrefixProblem(line[parts[0]], inFile: true, out var network, out int length) is { } problem)
            {
                Bad(problem);
                continue;
            }
            UInt128 via = 0;
            if (count == 3 && family.NextHopProblem(line[parts[2]], inFile: true, out via) is { } hopProblem)
            {
                Bad(hopProblem);
                continue;
            }
            if (interfaces.Problem(line[parts[1]].ToString(), count == 3 ? family.ToAddress(via) : null, out int ifindex) is { } ifProblem)
            {
                Bad(ifProblem);
                continue;
            }
            if (!lines.TryAdd((network, length), (number, ifindex)))
            {
                Bad($"duplicate prefix {family.ToAddress(network)}/{length} (first given at line {lines[(network, length)].Line})");
                continue;
            }
            family.AddRow(table, length, network, ifindex, via);
        }
        if (errors > MaxReported)
            context.Error(node, $"{path}: {errors - MaxReported} more bad lines");
        return (table, errors == 0);
    }
}
