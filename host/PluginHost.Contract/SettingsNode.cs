namespace PluginHost.Contract;

/// <summary>Shape of a settings value.</summary>
public enum SettingsKind
{
    /// <summary>Absent or null.</summary>
    Missing,
    /// <summary>A string, number or boolean.</summary>
    Scalar,
    /// <summary>Key/value pairs.</summary>
    Mapping,
    /// <summary>A list.</summary>
    Sequence,
}

/// <summary>
/// A read-only view of a stage's settings, independent of the file format, that knows where each
/// value came from so errors can name the file, the line and the field path.
/// </summary>
public sealed class SettingsNode
{
    private readonly IReadOnlyDictionary<string, SettingsNode> _children;
    private readonly IReadOnlyList<SettingsNode> _items;

    /// <summary>Create a node; the host does this from the configuration file.</summary>
    public SettingsNode(string path, int line, SettingsKind kind, string? scalar = null,
        IReadOnlyDictionary<string, SettingsNode>? children = null, IReadOnlyList<SettingsNode>? items = null)
    {
        Path = path;
        Line = line;
        Kind = kind;
        Scalar = scalar;
        _children = children ?? new Dictionary<string, SettingsNode>();
        _items = items ?? [];
    }

    /// <summary>Field path from the configuration root, e.g. <c>pipelines[0].stages[1].settings.routes[2].from</c>.</summary>
    public string Path { get; }

    /// <summary>1-based line in the configuration file, 0 when unknown.</summary>
    public int Line { get; }

    /// <summary>The shape of the value.</summary>
    public SettingsKind Kind { get; }

    /// <summary>The scalar text, when <see cref="Kind"/> is Scalar.</summary>
    public string? Scalar { get; }

    /// <summary>Child of a mapping; a Missing node (with the would-be path) when absent.</summary>
    public SettingsNode this[string key] =>
        _children.TryGetValue(key, out var child) ? child : new SettingsNode(Path.Length == 0 ? key : $"{Path}.{key}", Line, SettingsKind.Missing);

    /// <summary>Keys of a mapping, in file order.</summary>
    public IEnumerable<string> Keys => _children.Keys;

    /// <summary>Items of a sequence.</summary>
    public IReadOnlyList<SettingsNode> Items => _items;

    /// <summary>True when the value is absent or null.</summary>
    public bool IsMissing => Kind == SettingsKind.Missing;

    /// <summary>Report every key of this mapping that is not in <paramref name="known"/>.</summary>
    public void RejectUnknownKeys(IStageContext context, params string[] known)
    {
        foreach (var key in Keys)
            if (!known.Contains(key))
                context.Error(this[key], $"unknown field '{key}' (expected one of: {string.Join(", ", known)})");
    }

    /// <summary>
    /// Resolve this scalar as an interface name in the pipeline's namespace; when it is missing, not a name
    /// or not a usable interface, report that at this node and return false. (Contract 1.1.)
    /// </summary>
    public bool TryResolveInterface(IStageContext context, out int ifindex)
    {
        ifindex = 0;
        if (Kind != SettingsKind.Scalar)
        {
            context.Error(this, "missing output interface");
            return false;
        }
        if (!context.TryResolveInterface(Scalar!, out ifindex, out string error))
        {
            context.Error(this, error);
            return false;
        }
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => Scalar ?? Kind.ToString();
}
