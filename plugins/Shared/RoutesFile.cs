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

    /// <summary>Routes file size when the stage does not set <c>routesFileMaxBytes</c>: a full IPv6 table with next hops is about 100 MB.</summary>
    public const long DefaultMaxBytes = 128L << 20;

    /// <summary>
    /// The longest line, in bytes (a route is at most about 110 characters; the rest is for comments). Longer lines are
    /// refused, and never held in memory whole (a 50 MB line once cost 3 GB).
    /// </summary>
    public const int MaxLineBytes = 4096;

    /// <summary>
    /// The table and prefixes of the routes file <paramref name="node"/> names; problems are reported at the node. The file
    /// must be a regular file inside the directories the host allows, at most <paramref name="maxBytes"/> bytes, with lines of
    /// at most <see cref="MaxLineBytes"/> bytes and at most <paramref name="maxRoutes"/> routes. Errors name the file, the line
    /// and the field, never what the file holds.
    /// </summary>
    public (EntryTable? Table, FileRoutes Lines) Read(SettingsNode node, IStageContext context, long maxBytes = DefaultMaxBytes, int maxRoutes = int.MaxValue)
    {
        if (node.Kind != SettingsKind.Scalar)
        {
            context.Error(node, "expected the path of a routes file");
            return (null, FileRoutes.Empty);
        }
        string path;
        FileStream stream;
        try
        {
            path = context.ResolvePath(node.Scalar!);
            stream = RegularFile.Open(path, "routes file", maxBytes, "raise it with routesFileMaxBytes");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            context.Error(node, e is UnauthorizedAccessException ? $"routes file {e.Message}" : e.Message);
            return (null, FileRoutes.Empty);
        }
        using (stream)
        {
            // Taken before reading: a file rewritten while it is read is read again next time.
            long length = RandomAccess.GetLength(stream.SafeFileHandle);
            var written = File.GetLastWriteTimeUtc(stream.SafeFileHandle);
            Parsed? last;
            lock (_lock)
                last = _files.GetValueOrDefault(path);
            if (last is not null && length == last.Length && written == last.Written && Interfaces.Unchanged(last.Outputs, context, node))
            {
                Interfaces.Report(context, node, last.Outputs);
                return (last.Table, last.Lines);
            }
            var interfaces = new Interfaces(context, node);
            var lines = new FileRoutes();
            Interlocked.Increment(ref _reads);
            EntryTable table;
            bool clean;
            try
            {
                (table, clean) = Parse(node, path, stream, maxBytes, maxRoutes, context, lines, interfaces);
            }
            catch (IOException e)
            {
                context.Error(node, $"read routes file '{path}': {e.Message}");
                return (null, FileRoutes.Empty);
            }
            Interfaces.Report(context, node, interfaces.Resolved);
            if (clean)
                lock (_lock)
                {
                    if (_files.Count >= MaxFiles)
                        _files.Clear();
                    _files[path] = new Parsed(length, written, interfaces.Resolved, table, lines);
                }
            return (table, lines);
        }
    }

    // One route per line, "PREFIX INTERFACE [VIA]", '#' starts a comment; the same checks as settings. Every bad line is
    // reported with its line number (up to 20, then a count), and a bad file applies nothing. Parsed on spans: this runs
    // a million times for a full table. Returns the table and whether every line was good.
    private (EntryTable Table, bool Clean) Parse(SettingsNode node, string path, Stream stream, long maxBytes, int maxRoutes,
        IStageContext context, FileRoutes lines, Interfaces interfaces)
    {
        var table = new EntryTable(map, family.KeyColumns, family.ValueColumns, capacity: 1024);
        int errors = 0, number = 0;
        void Bad(string message)
        {
            if (++errors <= MaxReported)
                context.Error(node, $"{path}:{number}: {message}");
        }
        Span<Range> parts = stackalloc Range[4];
        Span<char> text = stackalloc char[MaxLineBytes];
        foreach (var (bytes, tooLong) in BoundedLines(stream, maxBytes))
        {
            number++;
            if (tooLong)
            {
                Bad($"line longer than {MaxLineBytes:N0} bytes");
                continue;
            }
            var line = text[..System.Text.Encoding.UTF8.GetChars(bytes.Span, text)];
            int hash = line.IndexOf('#');
            if (hash >= 0)
                line = line[..hash];
            int count = ((ReadOnlySpan<char>)line).SplitAny(parts, " \t\r", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (count == 0)
                continue;
            // The fields themselves are not repeated: the host reads files as root, and an error travels to the API,
            // the log and the reload history.
            if (count is < 2 or > 3)
            {
                Bad($"expected 'PREFIX INTERFACE [VIA]', got {(count == 1 ? "1 field" : $"{(count > 3 ? "more than 3" : count)} fields")}");
                continue;
            }
            if (family.PrefixProblem(line[parts[0]], inFile: true, out var network, out int length) is { } problem)
            {
                Bad(Unquoted(problem, line[parts[0]], 1));
                continue;
            }
            UInt128 via = 0;
            if (count == 3 && family.NextHopProblem(line[parts[2]], inFile: true, out via) is { } hopProblem)
            {
                Bad(Unquoted(hopProblem, line[parts[2]], 3));
                continue;
            }
            if (interfaces.Problem(line[parts[1]].ToString(), count == 3 ? family.ToAddress(via) : null, out int ifindex) is { } ifProblem)
            {
                Bad(Unquoted(ifProblem, line[parts[1]], 2));
                continue;
            }
            if (!lines.TryAdd((network, length), (number, ifindex)))
            {
                Bad($"duplicate prefix {family.ToAddress(network)}/{length} (first given at line {lines[(network, length)].Line})");
                continue;
            }
            if (lines.Count > maxRoutes)
            {
                context.Error(node, $"{path}:{number}: more than {maxRoutes:N0} routes: at most {maxRoutes:N0} per stage (the rest is not read)");
                return (table, false);
            }
            family.AddRow(table, length, network, ifindex, via);
        }
        if (errors > MaxReported)
            context.Error(node, $"{path}: {errors - MaxReported} more bad lines");
        return (table, errors == 0);
    }

    // A message about one field, with the field's text (the file's contents) replaced by its position.
    private static string Unquoted(string message, ReadOnlySpan<char> field, int position) =>
        message.Replace($"'{field}'", $"(field {position})", StringComparison.Ordinal);

    // The file's lines as bytes, without their '\n': each at most MaxLineBytes (a longer one is skipped, flagged, never held
    // whole), the file read up to maxBytes and no further (it may have grown since it was measured).
    private static IEnumerable<(ReadOnlyMemory<byte> Bytes, bool TooLong)> BoundedLines(Stream stream, long maxBytes)
    {
        var buffer = new byte[64 * 1024];
        var line = new byte[MaxLineBytes];
        int used = 0;
        bool tooLong = false;
        long total = 0;
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            total += read;
            if (total > maxBytes)
                throw new IOException($"it grew past the limit of {maxBytes:N0} bytes while it was read");
            int start = 0;
            while (start < read)
            {
                int end = Array.IndexOf(buffer, (byte)'\n', start, read - start);
                int stop = end < 0 ? read : end;
                int take = stop - start;
                if (!tooLong && used + take <= MaxLineBytes)
                {
                    Buffer.BlockCopy(buffer, start, line, used, take);
                    used += take;
                }
                else
                    tooLong = true;
                if (end < 0)
                    break;
                yield return (line.AsMemory(0, used), tooLong);
                (used, tooLong, start) = (0, false, end + 1);
            }
        }
        if (used > 0 || tooLong)
            yield return (line.AsMemory(0, used), tooLong);
    }

    /// <summary>
    /// A size setting: a number of bytes, or with a unit (KiB, MiB, GiB: "64MiB"); problems reported at <paramref name="node"/>.
    /// </summary>
    public static bool TryParseSize(SettingsNode node, IStageContext context, out long bytes)
    {
        bytes = 0;
        string text = node.Scalar?.Trim() ?? "";
        int shift = text.EndsWith("KiB", StringComparison.Ordinal) ? 10 : text.EndsWith("MiB", StringComparison.Ordinal) ? 20
            : text.EndsWith("GiB", StringComparison.Ordinal) ? 30 : 0;
        var digits = shift == 0 ? text : text[..^3].TrimEnd();
        if (node.Kind == SettingsKind.Scalar && long.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n)
            && n > 0 && n <= (1L << 40) >> shift)
        {
            bytes = n << shift;
            return true;
        }
        context.Error(node, "expected a size in bytes, or with KiB, MiB or GiB (such as 256MiB), at most 1 TiB");
        return false;
    }
}
