using PluginHost.Observe;
using System.Reflection;
using System.Text;
using PluginHost.Contract;
using PluginHost.Datapath;

namespace PluginHost.Compose;

/// <summary>One stage as the composer needs it: host-owned data copied out of the plugin.</summary>
public sealed record StagePlan(
    string PluginName,
    StageTemplate Template,
    IReadOnlyList<MapSchema> Maps,
    IReadOnlyDictionary<string, long> Constants)
{
    /// <summary>Packets to run through a new generation before it goes live.</summary>
    public IReadOnlyList<CanaryPacket> Canaries { get; init; } = [];

    /// <summary>The plugin's one line on what the stage holds (<see cref="StageSetup.Summary"/>), if any.</summary>
    public string? Summary { get; init; }

    /// <summary>Where the datapath counts the stage's named items (<see cref="StageSetup.ItemCounters"/>), checked against its maps.</summary>
    public IReadOnlyList<ItemCounter> ItemCounters { get; init; } = [];

    /// <summary>The health probes the stage declares (<see cref="StageSetup.Probes"/>), checked.</summary>
    public IReadOnlyList<Probe> Probes { get; init; } = [];

    /// <summary>The plugin's conversion for state maps whose layout changed, when it has one.</summary>
    public Func<MapSchema, MapSchema, MapEntry, MapEntry?>? Migrate { get; init; }

    /// <summary>The plugin build the stage comes from (its DLL's SHA-256 and informational version); empty when unknown (tests).</summary>
    public StageBuild Build { get; init; } = StageBuild.Unknown;
}

/// <summary>A plugin build as a stage records it: what <c>status</c> shows, and part of what decides that its canaries run again.</summary>
/// <param name="Version">The assembly's informational version (AssemblyInformationalVersion, else its version).</param>
/// <param name="Sha256">The DLL's SHA-256, lower-case hex.</param>
public sealed record StageBuild(string Version, string Sha256)
{
    public static StageBuild Unknown { get; } = new("", "");

    /// <summary>The first 12 hex digits, as status shows them.</summary>
    public string ShortSha256 => Sha256.Length <= 12 ? Sha256 : Sha256[..12];
}

/// <summary>What to compose: a pipeline's hook and its ordered stages. No generation number: it is set at
/// load time, so an unchanged chain composes to the same source and hits the compile cache.</summary>
public sealed record PipelinePlan(string Name, Direction Direction, IReadOnlyList<StagePlan> Stages);

/// <summary>A composed stage: its program, its maps with their layouts.</summary>
/// <param name="InstanceName">Plugin name and occurrence in the pipeline (SourcePolicy-0): names its pinned maps,
/// so inserting another stage does not make a stage's state look like someone else's.</param>
/// <param name="ProgramName">The program the stage runs in: the entry program for the first stage (which saves a
/// tail call per packet), its own program, reached by a tail call to prog-array slot <see cref="Index"/>, for the others.</param>
public sealed record StageSpec(int Index, string PluginName, string InstanceName, string ProgramName, IReadOnlyList<StageMap> Maps)
{
    /// <summary>Row of this stage in the stats map.</summary>
    public int Row => Index + 1;

    /// <summary>Whether the stage has its own program in the prog array (all but the first, which runs in the entry program).</summary>
    public bool HasOwnProgram => Index > 0;
}

/// <summary>
/// The deterministic result of composition: one C translation unit and the table that says which
/// program fills which prog-array slot. Unit tests check it with no kernel.
/// </summary>
public sealed record ChainSpec(string PipelineName, Direction Direction, string Source, IReadOnlyList<StageSpec> Stages)
{
    public const string EntryProgram = "ph_entry";
    public const string ChainMap = "ph_chain";
    public const string StatsMap = "ph_stats";

    /// <summary>Entries of the stats map: one row for the entry program, one per stage.</summary>
    public int StatsRows => Stages.Count + 1;
}

/// <summary>Renders host templates and stage fragments into one C file for clang.</summary>
internal static class ChainComposer
{
    public const int PullLength = 192;
    public const int MaxIpv6ExtensionHeaders = 6;

    public static ChainSpec Compose(PipelinePlan plan)
    {
        // A runtime command plans the same chain again: the last few compositions are kept by what they are made of.
        string key = InputsOf(plan);
        lock (Recent)
            if (Recent.TryGetValue(key, out var known))
                return known;
        var spec = ComposeUncached(plan);
        lock (Recent)
        {
            if (Recent.Count >= 16)
                Recent.Clear();
            Recent[key] = spec;
        }
        return spec;
    }

    private static readonly Dictionary<string, ChainSpec> Recent = [];

    // Everything composition reads of a plan, written out: equal text, equal chain.
    private static string InputsOf(PipelinePlan plan)
    {
        var sb = new StringBuilder().Append(plan.Name.Length).Append(':').Append(plan.Name).Append('|').Append(plan.Direction).Append('|');
        foreach (var stage in plan.Stages)
        {
            sb.Append(stage.PluginName).Append('|').Append(stage.Template.FileName).Append('|')
              .Append(stage.Template.Text.Length).Append(':').Append(stage.Template.Text).Append('|');
            foreach (var map in stage.Maps)
            {
                sb.Append(map.Name).Append(',').Append(map.Kind).Append(',').Append(map.MaxEntries).Append(',').Append(map.Contents)
                  .Append(',').Append(map.DoubleBuffered).Append('[');
                foreach (var f in map.Key)
                    sb.Append(f.Name).Append(':').Append(f.Type).Append(';');
                sb.Append("][");
                foreach (var f in map.Value)
                    sb.Append(f.Name).Append(':').Append(f.Type).Append(';');
                sb.Append(']');
            }
            foreach (var (name, value) in stage.Constants.OrderBy(c => c.Key, StringComparer.Ordinal))
                sb.Append(name).Append('=').Append(value).Append(';');
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static ChainSpec ComposeUncached(PipelinePlan plan)
    {
        var stages = new List<StageSpec>();
        var stageModels = new List<Dictionary<string, object?>>();
        for (int i = 0; i < plan.Stages.Count; i++)
        {
            var stage = plan.Stages[i];
            if (!StageMap.Identifier().IsMatch(stage.PluginName))
                throw new ArgumentException($"compose pipeline {plan.Name}: plugin name '{stage.PluginName}' is not a C identifier");
            string instance = InstanceName(plan.Stages.Select(s => s.PluginName).ToList(), i);
            var maps = StageMap.ForStage(i, instance, stage.Maps);
            string program = i == 0 ? ChainSpec.EntryProgram : $"ph_s{i}_{stage.PluginName.ToLowerInvariant()}";
            var spec = new StageSpec(i, stage.PluginName, instance, program, maps);
            stages.Add(spec);

            var model = Common(plan);
            model["stage"] = new Dictionary<string, object?>
            {
                ["index"] = i,
                ["row"] = spec.Row,
                ["plugin"] = stage.PluginName,
                ["function"] = $"s{i}_run",
                ["glue"] = GlueFunction(i),
                ["program"] = spec.ProgramName,
                ["own_program"] = spec.HasOwnProgram,
                ["next_slot"] = i + 1 < plan.Stages.Count ? i + 1 : -1,
                ["bank"] = maps.Any(m => m.IsBankSelector) ? StageMap.BankExpression(i) : "0",
            };
            model["maps"] = maps.Where(m => !m.SecondCopy && !m.IsBankSelector).ToDictionary(m => m.Schema.Name, m => (object?)new Dictionary<string, object?>
            {
                ["name"] = m.CName,
                ["name_b"] = m.Schema.DoubleBuffered ? m.CName + "_b" : m.CName,
                ["key_type"] = $"struct {m.Key.CName}",
                ["value_type"] = $"struct {m.Value.CName}",
            });
            model["constants"] = stage.Constants.ToDictionary(c => c.Key, c => (object?)c.Value);
            string fragment = TemplateRenderer.Render(stage.Template.Text, $"{stage.PluginName}/{stage.Template.FileName}", model);
            var stageModel = (Dictionary<string, object?>)model["stage"]!;
            // Generated map code gets a virtual file name, so a diagnostic in it is not blamed on a template.
            string mapsC = maps.Count == 0 ? "" : $"#line 1 \"generated/stage{i}-{stage.PluginName}-maps.h\"\n" + string.Join("", maps.Select(m => m.ToC()));
            stageModel["fragment"] = mapsC + fragment;
            stageModels.Add(model);
        }

        var source = new StringBuilder();
        var common = Common(plan);
        source.Append(HostTemplate("prelude.h.sbn", common));
        source.Append(HostTemplate("parser.h.sbn", common));
        foreach (var model in stageModels)
            source.Append(HostTemplate("stage.c.sbn", model));
        source.Append(HostTemplate("entry.c.sbn", common));
        source.Append(HostTemplate("license.c.sbn", common));
        return new ChainSpec(plan.Name, plan.Direction, source.ToString(), stages);
    }

    private static string GlueFunction(int stage) => $"ph_s{stage}_stage";

    /// <summary>
    /// A stage's identity: plugin name and occurrence in the pipeline (SourcePolicy-0). It names pinned maps and
    /// runtime edits, so inserting another stage does not make a stage's state look like someone else's.
    /// </summary>
    public static string InstanceName(IReadOnlyList<string> plugins, int stage) =>
        $"{plugins[stage]}-{plugins.Take(stage).Count(p => p == plugins[stage])}";

    private static Dictionary<string, object?> Common(PipelinePlan plan) => new()
    {
        ["pipeline"] = new Dictionary<string, object?>
        {
            ["name"] = plan.Name,
            ["direction"] = plan.Direction.ToString().ToLowerInvariant(),
            ["ingress"] = plan.Direction == Direction.Ingress ? 1 : 0,
        },
        ["chain"] = new Dictionary<string, object?>
        {
            ["stage_count"] = plan.Stages.Count,
            ["first_stage"] = GlueFunction(0),
            // Slot i holds stage i; slot 0 stays empty (the first stage runs in the entry program).
            ["slots"] = Math.Max(1, plan.Stages.Count),
            ["stats_rows"] = plan.Stages.Count + 1,
        },
        ["counters"] = new Dictionary<string, object?>
        {
            ["per_row"] = CounterLayout.PerRow,
            ["entry"] = Enum.GetValues<EntryCounter>().Select(c => new Dictionary<string, object?> { ["name"] = CounterLayout.CName(c), ["index"] = (int)c }).ToList(),
            ["stage"] = CounterLayout.StageColumns.Select(c => new Dictionary<string, object?> { ["name"] = CounterLayout.CName(c), ["index"] = (int)c }).ToList(),
        },
        ["parser"] = new Dictionary<string, object?>
        {
            ["pull_len"] = PullLength,
            ["max_ipv6_ext_headers"] = MaxIpv6ExtensionHeaders,
        },
    };

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> HostTemplates = new();

    private static string HostTemplate(string name, IReadOnlyDictionary<string, object?> model)
    {
        string text = HostTemplates.GetOrAdd(name, n =>
        {
            using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"bpf-templates/{n}")
                ?? throw new InvalidOperationException($"read host template {n}: not embedded in the engine");
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        });
        return TemplateRenderer.Render(text, $"bpf-templates/{name}", model);
    }
}
