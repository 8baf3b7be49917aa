namespace PluginHost.Bench;

/// <summary>Command line of the harness: <c>[--quick] [--json] [--only SECTION,...]</c>.</summary>
public sealed record BenchOptions(bool Quick, bool Json, IReadOnlySet<string> Sections, IReadOnlyList<string> Arguments)
{
    public const string PerPacket = "per-packet";
    public const string Lookup = "lookup";
    public const string Forwarding = "forwarding";
    public const string Reload = "reload";
    public const string ControlPlane = "control-plane";
    public const string Footprint = "footprint";
    public const string Classifier = "classifier";
    public const string LoadBalancer = "loadbalancer";

    public static readonly IReadOnlyList<string> AllSections = [PerPacket, Lookup, Forwarding, Reload, ControlPlane, Footprint, Classifier, LoadBalancer];

    public const string Usage = """
        usage: bench/run [--quick] [--json] [--only per-packet,lookup,forwarding,reload,control-plane,footprint,classifier,loadbalancer]
          --quick   fewer and shorter runs, 100,000-prefix tables at most: well under two minutes
          --json    print the results as JSON (progress still goes to stderr)
          --only    run only these sections (default: all)
        Needs root, a mounted bpffs, clang-19, nft (classifier) and a built solution (bench/run builds it).
        The classifier section reads ClassBench data from $PLUGINHOST_CLASSBENCH, ../shared/data/classbench
        beside the repository, or /work/shared/data/classbench.
        """;

    public bool Runs(string section) => Sections.Contains(section);

    /// <summary>Parse the arguments; null with <paramref name="error"/> set when they are wrong, null without it for --help.</summary>
    public static BenchOptions? Parse(IReadOnlyList<string> args, out string? error)
    {
        error = null;
        bool quick = false, json = false;
        var sections = new HashSet<string>(AllSections);
        for (int i = 0; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--json":
                    json = true;
                    break;
                case "--only" when i + 1 < args.Count:
                    sections = [.. args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
                    var unknown = sections.Where(s => !AllSections.Contains(s)).ToList();
                    if (unknown.Count > 0 || sections.Count == 0)
                    {
                        error = $"parse --only: unknown section '{string.Join(",", unknown)}' (expected {string.Join(", ", AllSections)})";
                        return null;
                    }
                    break;
                case "-h" or "--help":
                    return null;
                default:
                    error = $"parse arguments: unknown argument '{args[i]}'";
                    return null;
            }
        }
        return new BenchOptions(quick, json, sections, args.ToList());
    }
}
