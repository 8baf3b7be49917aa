using System.Text.Json;
using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Observe;
using Xunit;

namespace PluginHost.Tests.Engine.Observe;

[Trait("Category", "Unit")]
public sealed class CounterModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-counters-").FullName;

    private static readonly (string, string)[] TwoStages = [("FiveTuplePolicy", "FiveTuplePolicy-0"), ("SourcePolicy", "SourcePolicy-0")];

    // Rows as the map holds them: column numbers are the enums' values.
    private static ulong[] Row<TCounter>(params (TCounter Counter, ulong Value)[] values) where TCounter : struct, Enum
    {
        var row = new ulong[CounterLayout.PerRow];
        foreach (var (c, v) in values)
            row[Convert.ToInt32(c)] = v;
        return row;
    }

    private static PipelineCounters Counters(string pipeline, uint generation, IReadOnlyList<(string, string)> stages, params ulong[][] rows) =>
        CounterReader.FromRows(pipeline, generation, stages, r => rows[r]);

    [Fact]
    public void StagePacketsAreWhatTheEntryHandedOnLessWhatEarlierStagesFinished()
    {
        var c = Counters("p", 1, TwoStages,
            Row((EntryCounter.Packets, 100ul), (EntryCounter.Bytes, 6400ul), (EntryCounter.PassArp, 3ul), (EntryCounter.PassTruncated, 2ul),
                (EntryCounter.Ipv4, 95ul), (EntryCounter.Fragments, 7ul)), // neither Ipv4 nor Fragments is a pass reason
            Row((StageCounter.Packets, 999ul), (StageCounter.Redirected, 40ul), (StageCounter.Dropped, 5ul), (StageCounter.Passed, 10ul),
                (StageCounter.Matched, 60ul), (StageCounter.RedirectErrors, 1ul)),
            Row((StageCounter.Redirected, 30ul)));

        Assert.Equal(95ul, c.Stages[0][StageCounter.Packets]);       // 100 − 3 − 2; the row's own column 0 is ignored
        Assert.Equal(40ul, c.Stages[1][StageCounter.Packets]);       // 95 − 40 − 5 − 10: matched and errors are not outcomes
        Assert.Equal((40ul, 60ul, 1ul), (c.Stages[0][StageCounter.Redirected], c.Stages[0][StageCounter.Matched], c.Stages[0][StageCounter.RedirectErrors]));
        Assert.Equal(6400ul, c.Entry[EntryCounter.Bytes]);
        Assert.Equal(("SourcePolicy", "SourcePolicy-0", 1), (c.Stages[1].Plugin, c.Stages[1].Instance, c.Stages[1].Index));
    }

    [Fact]
    public void TargetDownIsAPassAndCountedOnce()
    {
        // The redirect helpers count a withdrawn route's packet as TargetDown and the glue counts its pass: the next stage
        // sees what the first did not finish, TargetDown included once (in Passed), never subtracted twice.
        var c = Counters("p", 1, TwoStages,
            Row((EntryCounter.Packets, 100ul)),
            Row((StageCounter.Redirected, 40ul), (StageCounter.Passed, 25ul), (StageCounter.TargetDown, 25ul)),
            Row<StageCounter>());
        Assert.Equal(100ul, c.Stages[0][StageCounter.Packets]);
        Assert.Equal(35ul, c.Stages[1][StageCounter.Packets]);
        Assert.Equal(25ul, c.Stages[0][StageCounter.TargetDown]);
        Assert.Contains(StageCounter.Passed, CounterLayout.StageOutcomes);
        Assert.DoesNotContain(StageCounter.TargetDown, CounterLayout.StageOutcomes);
    }

    [Fact]
    public void DerivedPacketsNeverWrapBelowZero()
    {
        // A read races with packets in flight: a stage may show outcomes its predecessor's count does not yet include.
        var c = Counters("p", 1, TwoStages,
            Row((EntryCounter.Packets, 10ul), (EntryCounter.PassNonIp, 12ul)),
            Row((StageCounter.Redirected, 4ul)),
            Row((StageCounter.Redirected, 1ul)));
        Assert.Equal(0ul, c.Stages[0][StageCounter.Packets]);
        Assert.Equal(0ul, c.Stages[1][StageCounter.Packets]);
    }

    [Fact]
    public void TotalsAcrossGenerationsAddUpByStageInstance()
    {
        // Generation 1: FiveTuplePolicy then SourcePolicy. Generation 2: a LoadBalancer stage in front, SourcePolicy moved to index 2.
        var g1 = Counters("p", 1, TwoStages,
            Row((EntryCounter.Packets, 100ul), (EntryCounter.PassArp, 10ul)),
            Row((StageCounter.Redirected, 50ul), (StageCounter.RedirectedBytes, 5000ul)),
            Row((StageCounter.Redirected, 30ul), (StageCounter.Passed, 10ul)));
        (string, string)[] threeStages = [("LoadBalancer", "LoadBalancer-0"), ("FiveTuplePolicy", "FiveTuplePolicy-0"), ("SourcePolicy", "SourcePolicy-0")];
        var g2 = Counters("p", 2, threeStages,
            Row((EntryCounter.Packets, 20ul)),
            Row((StageCounter.Redirected, 5ul)),
            Row((StageCounter.Dropped, 5ul)),
            Row((StageCounter.Redirected, 10ul)));
        // Generation 3 runs: SourcePolicy alone.
        var g3 = Counters("p", 3, [("SourcePolicy", "SourcePolicy-0")],
            Row((EntryCounter.Packets, 7ul)),
            Row((StageCounter.Redirected, 7ul)));

        var retired = CounterTotals.Empty()
            .Add(g1, g1.Stages.Select(s => s.Instance).ToList())
            .Add(g2, g2.Stages.Select(s => s.Instance).ToList());
        var totals = g3.Plus(retired);

        Assert.Equal(127ul, totals.Entry[EntryCounter.Packets]);
        Assert.Equal(10ul, totals.Entry[EntryCounter.PassArp]);
        var sourcePolicy = Assert.Single(totals.Stages); // the running generation's stages, each with its own history
        Assert.Equal((0, "SourcePolicy-0"), (sourcePolicy.Index, sourcePolicy.Instance));
        Assert.Equal(30ul + 10ul + 7ul, sourcePolicy[StageCounter.Redirected]);
        Assert.Equal(10ul, sourcePolicy[StageCounter.Passed]);
        // Packets that reached it: g1 90 − 50 = 40, g2 20 − 5 − 5 = 10, g3 7.
        Assert.Equal(40ul + 10ul + 7ul, sourcePolicy[StageCounter.Packets]);
        // Stages no longer running keep their totals in the state, for when they come back.
        Assert.Equal((50ul, 5ul), (retired.Stages["FiveTuplePolicy-0"][StageCounter.Redirected], retired.Stages["FiveTuplePolicy-0"][StageCounter.Dropped]));
        Assert.Equal(90ul + 15ul, retired.Stages["FiveTuplePolicy-0"][StageCounter.Packets]);
        Assert.Equal(5000ul, retired.Stages["FiveTuplePolicy-0"][StageCounter.RedirectedBytes]);
        Assert.Equal(5ul, retired.Stages["LoadBalancer-0"][StageCounter.Redirected]);
    }

    [Fact]
    public void TheDeployersPositionalReadIsNamedByAdd()
    {
        // The deployer reads a retiring generation knowing only its stage count, and names the stages when adding.
        var bare = Counters("", 0, [("", ""), ("", "")],
            Row((EntryCounter.Packets, 5ul)), Row((StageCounter.Passed, 2ul)), Row((StageCounter.Passed, 3ul)));
        var totals = CounterTotals.Empty().Add(bare, ["A-0", "B-0"]);
        Assert.Equal((2ul, 3ul), (totals.Stages["A-0"][StageCounter.Passed], totals.Stages["B-0"][StageCounter.Passed]));
    }

    [Fact]
    public void SinceCountsWhatHappenedBetweenTwoReadings()
    {
        var before = Counters("p", 1, TwoStages.Take(1).ToList(), Row((EntryCounter.Packets, 10ul)), Row((StageCounter.Redirected, 4ul)));
        var after = Counters("p", 2, TwoStages, Row((EntryCounter.Packets, 25ul)), Row((StageCounter.Redirected, 9ul)), Row((StageCounter.Passed, 3ul)));
        var counted = after.Since(before);
        Assert.Equal(15ul, counted.Entry[EntryCounter.Packets]);
        Assert.Equal(5ul, counted.Stages[0][StageCounter.Redirected]);
        Assert.Equal(0ul, counted.Stages[1][StageCounter.Passed]); // a stage new since the first reading has nothing to count from
        Assert.Equal(0ul, before.Since(after).Entry[EntryCounter.Packets]); // never below zero
    }

    [Fact]
    public void JsonNamesEveryCounterInCamelCaseAndReadsItBack()
    {
        var c = Counters("lan-in", 3, TwoStages,
            Row((EntryCounter.Packets, 10ul), (EntryCounter.PassNeighbourDiscovery, 1ul)),
            Row((StageCounter.RedirectedBytes, 980ul), (StageCounter.Redirected, 9ul)),
            Row<StageCounter>());
        var json = JsonDocument.Parse(JsonSerializer.Serialize(new[] { c }, HostJson.Options)).RootElement[0];

        Assert.Equal(["pipeline", "generation", "entry", "stages"], json.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["packets", "bytes", "ipv4", "ipv6", "passNonIp", "passArp", "passNeighbourDiscovery", "passTruncated", "passBadHeader",
            "fragments", "passHeadersTooLong", "passVlan", "passQinq", "passLengthBeyondFrame"], json.GetProperty("entry").EnumerateObject().Select(p => p.Name));
        var stage = json.GetProperty("stages")[0];
        Assert.Equal(["index", "plugin", "instance", "counters"], stage.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["packets", "redirectedBytes", "matched", "redirected", "passed", "dropped", "redirectErrors", "missedTailCalls",
            "ttlExpired", "generationMismatch", "targetDown"], stage.GetProperty("counters").EnumerateObject().Select(p => p.Name));
        Assert.Equal(980ul, stage.GetProperty("counters").GetProperty("redirectedBytes").GetUInt64());
        Assert.Equal(1ul, json.GetProperty("entry").GetProperty("passNeighbourDiscovery").GetUInt64());

        var back = JsonSerializer.Deserialize<PipelineCounters[]>(JsonSerializer.Serialize(new[] { c }, HostJson.Options), HostJson.Options)![0];
        Assert.Equal(c.Entry, back.Entry);
        Assert.Equal(c.Stages, back.Stages);
    }

    [Fact]
    public void MetricsAndCKeepTheirSnakeCaseNames()
    {
        Assert.Equal("redirected_bytes", CounterLayout.MetricName(StageCounter.RedirectedBytes));
        Assert.Equal("pass_neighbour_discovery", CounterLayout.MetricName(EntryCounter.PassNeighbourDiscovery));
        Assert.Equal("PH_S_REDIRECTED_BYTES", CounterLayout.CName(StageCounter.RedirectedBytes));
        Assert.Equal("PH_E_PASS_NON_IP", CounterLayout.CName(EntryCounter.PassNonIp));
        // One name per counter in each convention: the three agree word for word.
        foreach (var c in Enum.GetValues<StageCounter>())
            Assert.Equal(CounterLayout.MetricName(c).Replace("_", ""), CounterLayout.JsonName(c).ToLowerInvariant());
    }

    // A state file as hosts before the one counter model wrote it: PascalCase counter names and enum values.
    private const string LegacyState = """
        {
          "name": "lan-in", "interface": "lan0", "namespace": null, "direction": "ingress", "ifindex": 4, "generation": 3,
          "pinDirectory": "/sys/fs/bpf/pluginhost/lan-in", "generationDirectory": "/sys/fs/bpf/pluginhost/lan-in/g3",
          "deployedAt": "2026-11-25T06:42:00+00:00",
          "stages": [ { "index": 0, "plugin": "SourcePolicy", "instance": "SourcePolicy-0", "program": "ph_entry", "maps": [ "s0_routes" ] } ],
          "codeKey": "c0de",
          "maps": [ { "pin": "/sys/fs/bpf/pluginhost/lan-in/maps/SourcePolicy-0-routes-g1", "pinName": "SourcePolicy-0-routes", "cName": "s0_routes",
                      "stage": 0, "fingerprint": "f1",
                      "schema": { "name": "routes", "kind": "LpmTrie", "key": [ { "name": "prefix", "type": "Ipv4" } ],
                                  "value": [ { "name": "ifindex", "type": "U32" } ], "maxEntries": 1024, "contents": "Config" } } ],
          "retired": { "entry": { "Packets": 10, "Bytes": 1000, "PassArp": 2, "SomeFutureCounter": 5 },
                       "stages": { "SourcePolicy-0": { "Packets": 8, "RedirectedBytes": 500, "Redirected": 5, "Passed": 3 } } },
          "retiring": [ { "generation": 2, "stages": [ "SourcePolicy-0" ], "due": "2026-11-25T06:42:02+00:00" } ]
        }
        """;

    [Fact]
    public void StateFilesWrittenBeforeCamelCaseCountersStillRead()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "pipelines"));
        File.WriteAllText(PipelineState.FilePath(_dir, "lan-in"), LegacyState);

        var state = PipelineState.Load(_dir, "lan-in")!;
        Assert.Equal((10ul, 1000ul, 2ul), (state.Retired.Entry[EntryCounter.Packets], state.Retired.Entry[EntryCounter.Bytes], state.Retired.Entry[EntryCounter.PassArp]));
        var stage = state.Retired.Stages["SourcePolicy-0"];
        Assert.Equal((8ul, 500ul, 5ul, 3ul), (stage[StageCounter.Packets], stage[StageCounter.RedirectedBytes], stage[StageCounter.Redirected], stage[StageCounter.Passed]));
        Assert.Equal((MapKind.LpmTrie, FieldType.Ipv4, MapContents.Config), (state.Maps[0].Schema.Kind, state.Maps[0].Schema.Key[0].Type, state.Maps[0].Schema.Contents));

        // Saved again, it is written in the one convention and reads back the same.
        state.Save(_dir);
        string saved = File.ReadAllText(PipelineState.FilePath(_dir, "lan-in"));
        Assert.Contains("\"redirectedBytes\": 500", saved);
        Assert.Contains("\"kind\": \"lpmTrie\"", saved);
        Assert.DoesNotContain("\"Packets\"", saved);
        var again = PipelineState.Load(_dir, "lan-in")!;
        Assert.Equal(state.Retired.Entry, again.Retired.Entry);
        Assert.Equal(stage, again.Retired.Stages["SourcePolicy-0"]);
    }

    [Fact]
    public void AnUnreadableStateFileIsAnIoErrorNamingTheFile()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "pipelines"));
        string path = PipelineState.FilePath(_dir, "broken");
        File.WriteAllText(path, "{ \"name\": ");
        var e = Assert.Throws<InvalidDataException>(() => PipelineState.Load(_dir, "broken"));
        Assert.StartsWith($"read pipeline state {path}: ", e.Message);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
