using PluginHost.Contract;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace PluginHost.Config;

/// <summary>
/// What a configuration may cost to read. A 20 KB document nested 10,000 deep overflowed the stack of a recursive
/// reader, and a 1.3 KB alias bomb (nine anchors of nine aliases each) expands to 387 million nodes: both are refused
/// here, located, before anything is built from them.
/// </summary>
/// <param name="MaxFileBytes">The configuration file's size.</param>
/// <param name="MaxDepth">Nesting of mappings and sequences (the root is level 1), aliases expanded.</param>
/// <param name="MaxNodes">Nodes of the document with every alias expanded (an alias stands for its anchor's whole tree).</param>
/// <param name="MaxAliases">Aliases (<c>*name</c>) in the document.</param>
public sealed record YamlLimits(long MaxFileBytes = 4 << 20, int MaxDepth = 64, int MaxNodes = 250_000, int MaxAliases = 1_000)
{
    public static readonly YamlLimits Default = new();
}

/// <summary>
/// YAML text → <see cref="SettingsNode"/> tree, from the parser's events (YamlDotNet's parser keeps its own state on the
/// heap; its representation model builds recursively and expands nothing, which is why it is not used), within
/// <see cref="YamlLimits"/>. The first limit passed or the first syntax error throws a <see cref="ConfigException"/>
/// located at the node (the caller sets the file).
/// </summary>
internal static class BoundedYaml
{
    // A node as read: built bottom-up from events, shared by every alias that names it, then turned into SettingsNodes
    // (whose paths differ per place) by a recursion no deeper than MaxDepth.
    private sealed class Node(SettingsKind kind, int line)
    {
        public SettingsKind Kind { get; } = kind;
        public int Line { get; } = line;
        public string? Scalar { get; init; }
        public List<(string Key, int Line, Node Value)>? Children { get; init; }
        public List<Node>? Items { get; init; }
        public long Size { get; set; } = 1; // nodes, aliases expanded
        public int Height { get; set; } = 1; // levels, aliases expanded
        public bool Complete { get; set; }
    }

    // An open mapping or sequence: what it has so far, its path, and (for a mapping) the key waiting for its value.
    private sealed class Open(Node node, string path)
    {
        public Node Node { get; } = node;
        public string Path { get; } = path;
        public (string Key, int Line)? PendingKey { get; set; }
        public int Count { get; set; }
    }

    public static SettingsNode Read(string yaml, YamlLimits limits)
    {
        var parser = new Parser(new StringReader(yaml));
        var anchors = new Dictionary<string, Node>();
        var stack = new Stack<Open>();
        Node? root = null;
        int aliases = 0, lastLine = 0;
        long nodes = 0;

        static ConfigException Fail(int line, string path, string message) =>
            new([new ConfigError("", line, path.Length == 0 ? "(root)" : path, message)]);

        // Where the next value goes: its path (a mapping's key must come first, and be a plain name).
        string NextPath(int line)
        {
            if (stack.Count == 0)
                return "";
            var open = stack.Peek();
            if (open.Node.Kind == SettingsKind.Sequence)
                return $"{open.Path}[{open.Count}]";
            return open.PendingKey is { } key
                ? open.Path.Length == 0 ? key.Key : $"{open.Path}.{key.Key}"
                : throw Fail(line, open.Path, "mapping keys must be plain names");
        }

        void Add(Node node, string path, int line)
        {
            nodes += node.Size;
            if (nodes > limits.MaxNodes)
                throw Fail(line, path, $"more than {limits.MaxNodes:N0} nodes{(aliases > 0 ? " with aliases expanded" : "")}");
            if (stack.Count + node.Height > limits.MaxDepth)
                throw Fail(line, path, $"nesting deeper than {limits.MaxDepth} levels");
            if (stack.Count == 0)
            {
                root ??= node;
                return;
            }
            var open = stack.Peek();
            open.Count++;
            open.Node.Size += node.Size;
            open.Node.Height = Math.Max(open.Node.Height, node.Height + 1);
            if (open.Node.Kind == SettingsKind.Sequence)
            {
                open.Node.Items!.Add(node);
                return;
            }
            var (key, keyLine) = open.PendingKey!.Value;
            open.PendingKey = null;
            if (open.Node.Children!.Any(c => c.Key == key))
                throw Fail(keyLine, path, $"field '{ConfigText.Cut(key)}' is given twice");
            open.Node.Children!.Add((key, keyLine, node));
        }

        try
        {
            while (MoveNext(parser, lastLine))
            {
                var e = parser.Current!;
                int line = lastLine = (int)e.Start.Line;
                switch (e)
                {
                    case Scalar scalar when stack.Count > 0 && stack.Peek() is { Node.Kind: SettingsKind.Mapping, PendingKey: null } open:
                        open.PendingKey = (scalar.Value, line);
                        break;
                    case Scalar scalar:
                    {
                        string path = NextPath(line);
                        bool isNull = scalar.Style == ScalarStyle.Plain && scalar.Value is "" or "~" or "null";
                        var node = new Node(isNull ? SettingsKind.Missing : SettingsKind.Scalar, line) { Scalar = isNull ? null : scalar.Value, Complete = true };
                        Remember(scalar.Anchor, node);
                        Add(node, path, line);
                        break;
                    }
                    case AnchorAlias alias:
                    {
                        string path = NextPath(line);
                        if (++aliases > limits.MaxAliases)
                            throw Fail(line, path, $"more than {limits.MaxAliases:N0} aliases");
                        if (!anchors.TryGetValue(alias.Value.Value, out var target))
                            throw Fail(line, path, $"alias '*{ConfigText.Cut(alias.Value.Value)}' names no anchor before it");
                        if (!target.Complete)
                            throw Fail(line, path, $"alias '*{ConfigText.Cut(alias.Value.Value)}' is inside its own anchor");
                        Add(target, path, line);
                        break;
                    }
                    case MappingStart or SequenceStart:
                    {
                        string path = NextPath(line);
                        if (stack.Count + 1 > limits.MaxDepth)
                            throw Fail(line, path, $"nesting deeper than {limits.MaxDepth} levels");
                        var node = e is MappingStart
                            ? new Node(SettingsKind.Mapping, line) { Children = [] }
                            : new Node(SettingsKind.Sequence, line) { Items = [] };
                        Remember(((NodeEvent)e).Anchor, node);
                        stack.Push(new Open(node, path));
                        break;
                    }
                    case MappingEnd or SequenceEnd:
                    {
                        var done = stack.Pop();
                        done.Node.Complete = true;
                        // Its nodes were counted as they came; count it (and its place) once more as a whole.
                        nodes -= done.Node.Size - 1;
                        Add(done.Node, done.Path, done.Node.Line);
                        break;
                    }
                    case DocumentEnd when root is not null:
                        // Only the first document counts (as before); the rest is not even parsed.
                        return ToSettings(root, "");
                }
            }
        }
        catch (YamlException e)
        {
            throw new ConfigException([new ConfigError("", (int)e.Start.Line, "(syntax)", ConfigText.Cut(e.InnerException?.Message ?? e.Message))]);
        }
        return root is null ? new SettingsNode("", 0, SettingsKind.Missing) : ToSettings(root, "");

        void Remember(AnchorName anchor, Node node)
        {
            if (!anchor.IsEmpty)
                anchors[anchor.Value] = node;
        }
    }

    // YamlDotNet's own failures on malformed text are not all YamlExceptions (an InvalidOperationException from its scanner
    // on some plain scalars in flow mappings, found by the fuzzer): every one is a syntax error near the last event.
    private static bool MoveNext(Parser parser, int lastLine)
    {
        try
        {
            return parser.MoveNext();
        }
        catch (Exception e) when (e is not YamlException and not OutOfMemoryException)
        {
            throw new ConfigException([new ConfigError("", lastLine, "(syntax)", $"unreadable YAML after this line (the parser failed: {e.GetType().Name})")]);
        }
    }

    private static SettingsNode ToSettings(Node node, string path) => node.Kind switch
    {
        SettingsKind.Mapping => new SettingsNode(path, node.Line, SettingsKind.Mapping,
            children: node.Children!.ToDictionary(c => c.Key, c => ToSettings(c.Value, path.Length == 0 ? c.Key : $"{path}.{c.Key}"))),
        SettingsKind.Sequence => new SettingsNode(path, node.Line, SettingsKind.Sequence,
            items: node.Items!.Select((item, i) => ToSettings(item, $"{path}[{i}]")).ToList()),
        _ => new SettingsNode(path, node.Line, node.Kind, node.Scalar),
    };
}
