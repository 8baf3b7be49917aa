using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using PluginHost.Datapath;
using PluginHost.Kernel;
using PluginHost.Plugins.FiveTuplePolicy.Classifier;
using PluginHost.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PluginHost.Tests.Plugins.FiveTuplePolicy;

/// <summary>
/// The classifier as the kernel runs it: rule sets loaded through the plugin into a real chain, every header run through
/// BPF_PROG_TEST_RUN, and the rule it matched (its hit counter, the only one that moves) compared with the C# reference
/// (<see cref="LinearMatcher"/>) under the datapath's semantics: ports only for TCP, UDP and SCTP.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class ClassifierKernelTests(ITestOutputHelper output) : IDisposable
{
    private const int TcxNext = -1;

    private readonly KernelChain _net = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("pluginhost-classifier-").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        _net.Dispose();
    }

    // Rules through a rules file (action: next, the default), so every verdict is "next" and only the counters tell;
    // the first settingsRules of them in the settings instead (their tree is walked first).
    private LoadedChain Load(IReadOnlyList<RuleMatch> rules, int settingsRules = 0)
    {
        string file = Path.Combine(_dir, "set.rules");
        File.WriteAllLines(file, rules.Skip(settingsRules).Select((r, i) => $"{i} {r}"));
        var yaml = new System.Text.StringBuilder();
        foreach (var r in rules.Take(settingsRules))
        {
            yaml.Append("              - action: next\n");
            if (r.ProtocolLow == r.ProtocolHigh)
                yaml.Append($"                protocol: {r.ProtocolLow}\n");
            if (r.SourceLength > 0)
                yaml.Append($"                from: {AddressText.Format(r.Family, r.Source)}/{r.SourceLength}\n");
            if (r.DestinationLength > 0)
                yaml.Append($"                to: {AddressText.Format(r.Family, r.Destination)}/{r.DestinationLength}\n");
            if (r.SourcePortLow != 0 || r.SourcePortHigh != 65535)
                yaml.Append($"                sport: {r.SourcePortLow}-{r.SourcePortHigh}\n");
            if (r.DestinationPortLow != 0 || r.DestinationPortHigh != 65535)
                yaml.Append($"                dport: {r.DestinationPortLow}-{r.DestinationPortHigh}\n");
        }
        return _net.Load($"""
                  - plugin: FiveTuplePolicy
                    settings:
                      rulesFile: {file}
                      rules:
            {yaml}
            """.Replace("rules:\n\n", "rules: []\n"));
    }

    // Where rule i (in match order: settings, then file) keeps its counters: the settings' rules from 0, the file's from 1,024.
    private static int Slot(int rule, int settingsRules) => rule < settingsRules ? rule : 1024 + rule - settingsRules;

    private static ulong Hits(BpfMap hits, int rule)
    {
        Span<byte> value = stackalloc byte[24];
        return hits.TryLookup(BitConverter.GetBytes((uint)rule), value) ? BinaryPrimitives.ReadUInt64LittleEndian(value) : 0;
    }

    /// <summary>Runs every key; returns how many the kernel classified differently from the reference.</summary>
    private int Mismatches(LoadedChain chain, IReadOnlyList<RuleMatch> rules, IEnumerable<PacketKey> keys, out int checkedKeys, int settingsRules = 0)
    {
        var reference = new LinearMatcher(rules);
        var hits = chain.StageMaps["s0_hits"];
        int mismatches = 0;
        checkedKeys = 0;
        var watch = Stopwatch.StartNew();
        foreach (var key in keys)
        {
            int expected = reference.Match(key);
            Assert.True(expected >= 0, $"the reference matches every header of these sets ({key})");
            int slot = Slot(expected, settingsRules);
            ulong before = Hits(hits, slot);
            var run = chain.Entry.TestRun(Frame(key));
            checkedKeys++;
            if (run.ReturnValue != TcxNext || Hits(hits, slot) != before + 1)
            {
                if (++mismatches <= 10)
                    output.WriteLine($"mismatch: {key}: expected rule {expected} ({rules[expected]}), verdict {run.ReturnValue}");
            }
        }
        output.WriteLine($"{checkedKeys:N0} headers through the kernel in {watch.Elapsed.TotalSeconds:F1} s, {mismatches} mismatches");
        return mismatches;
    }

    // What the datapath sees of a header: ports only for TCP, UDP and SCTP.
    private static PacketKey AsDatapathSees(PacketKey key)
    {
        bool ports = key.Protocol is 6 or 17 or 132;
        return new PacketKey(key.Family, key.Protocol, key.Source, key.Destination, ports && key.HasPorts, key.SourcePort, key.DestinationPort);
    }

    [ClassBenchTheory]
    [InlineData("acl1-1k", int.MaxValue)]
    [InlineData("acl1-10k", int.MaxValue)]
    [InlineData("acl1-100k", 20_000)]
    public void EveryHeaderOfAClassBenchTraceMatchesTheRuleTheReferenceFinds(string set, int sample)
    {
        string rulesPath = ClassBenchData.PathOf(set + ".rules");
        var rules = File.Exists(rulesPath) ? ClassBenchFormat.ReadRules(rulesPath) : ReadGzipRules(rulesPath + ".gz");
        using var chain = Load(rules);
        // The trace, spread over the whole file when sampled: every n-th header.
        var trace = ClassBenchFormat.ReadTrace(ClassBenchData.PathOf(set + ".trace.gz")).ToList();
        int step = Math.Max(1, trace.Count / Math.Min(sample, trace.Count));
        var keys = trace.Where((_, i) => i % step == 0).Select(t => AsDatapathSees(t.Key)).ToList();
        // With ports (TCP, UDP), the reference agrees with the trace's own expected rule: the data is read right.
        Assert.All(trace.Where((t, i) => i % step == 0 && t.Key.Protocol is 6 or 17).Take(2000),
            t => Assert.Equal(t.ExpectedRule, new LinearMatcher(rules).Match(t.Key)));

        Assert.Equal(0, Mismatches(chain, rules, keys, out int checkedKeys));
        Assert.True(checkedKeys >= Math.Min(sample, trace.Count) * 9 / 10);
    }

    [KernelFact]
    public void RandomIPv6RuleSetsInSettingsAndAFileMatchTheReferenceOnEveryPacket()
    {
        var random = new Random(20261129);
        var generator = new ClassifierTests.RandomRules(random, ipv4Share: 0.1);
        const int SettingsRules = 200;
        var rules = new List<RuleMatch>();
        while (rules.Count < 1_500)
        {
            var rule = generator.Rule();
            // A rules file gives a protocol as one number or any; settings give ports only with TCP, UDP or SCTP.
            bool exactOrAny = rule.ProtocolLow == rule.ProtocolHigh || (rule.ProtocolLow == 0 && rule.ProtocolHigh == 255);
            bool settingsShape = !rule.RequiresPorts || (rule.ProtocolLow == rule.ProtocolHigh && rule.ProtocolLow is 6 or 17 or 132);
            if (exactOrAny && (rules.Count >= SettingsRules || settingsShape))
                rules.Add(rule);
        }
        rules.Add(RuleMatch.Any(IpFamily.IPv6));
        rules.Add(RuleMatch.Any(IpFamily.IPv4));
        using var chain = Load(rules, SettingsRules);

        var keys = new List<PacketKey>();
        while (keys.Count < 100_000)
        {
            var key = random.Next(4) == 0 ? generator.Packet() : generator.PacketNear(rules[random.Next(rules.Count - 2)]);
            // IPv6 extension header numbers would be parsed as such, and ICMPv6 types 133-137 go to the kernel unclassified.
            if (key.Family == IpFamily.IPv6 && key.Protocol is 0 or 43 or 44 or 60)
                continue;
            keys.Add(AsDatapathSees(key));
        }

        Assert.Equal(0, Mismatches(chain, rules, keys, out int checkedKeys, SettingsRules));
        Assert.Equal(100_000, checkedKeys);
        Assert.True(keys.Count(k => k.Family == IpFamily.IPv6) > 80_000);
        Assert.True(keys.Count(k => !k.HasPorts) > 5_000, "packets without ports are in the mix");
        var reference = new LinearMatcher(rules);
        int bySettings = keys.Count(k => reference.Match(k) < SettingsRules);
        Assert.True(bySettings > 5_000, $"{bySettings} packets are decided by the settings' rules (their tree, walked first)");
    }

    private static IReadOnlyList<RuleMatch> ReadGzipRules(string path)
    {
        using var reader = new StreamReader(new GZipStream(File.OpenRead(path), CompressionMode.Decompress));
        return ClassBenchFormat.ParseRules(reader, path);
    }

    // Ethernet + IPv4 or IPv6 + an 8-byte (TCP: 20-byte) L4 header whose first four bytes are the ports (zero for
    // ICMPv6, whose first byte is its type) + 18 bytes. A TCP, UDP or SCTP key without ports is a non-first fragment
    // (IPv6: behind a fragment header), as the datapath would meet it.
    private static byte[] Frame(PacketKey key)
    {
        bool v6 = key.Family == IpFamily.IPv6;
        bool laterFragment = !key.HasPorts && key.Protocol is 6 or 17 or 132;
        int fragmentHeader = v6 && laterFragment ? 8 : 0;
        int l3 = (v6 ? 40 : 20) + fragmentHeader, l4 = key.Protocol == 6 ? 20 : 8, payload = 18;
        var frame = new byte[14 + l3 + l4 + payload];
        frame[0] = 0x02; frame[5] = 0x02; frame[6] = 0x02; frame[11] = 0x01;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), v6 ? (ushort)0x86dd : (ushort)0x0800);
        var ip = frame.AsSpan(14);
        if (v6)
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(fragmentHeader + l4 + payload));
            ip[6] = laterFragment ? (byte)44 : key.Protocol;
            ip[7] = 64;
            BinaryPrimitives.WriteUInt128BigEndian(ip[8..], key.Source);
            BinaryPrimitives.WriteUInt128BigEndian(ip[24..], key.Destination);
            if (laterFragment)
            {
                ip[40] = key.Protocol;
                BinaryPrimitives.WriteUInt16BigEndian(ip[42..], 16 << 3); // offset 128 bytes, no more fragments
            }
        }
        else
        {
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(l3 + l4 + payload));
            if (laterFragment)
                BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 16); // offset 128 bytes
            ip[8] = 64;
            ip[9] = key.Protocol;
            BinaryPrimitives.WriteUInt32BigEndian(ip[12..], (uint)key.Source);
            BinaryPrimitives.WriteUInt32BigEndian(ip[16..], (uint)key.Destination);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Packets.Ipv4HeaderChecksum(ip[..20]));
        }
        var l4Header = ip[l3..];
        if (!(v6 && key.Protocol == 58))
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4Header, key.SourcePort);
            BinaryPrimitives.WriteUInt16BigEndian(l4Header[2..], key.DestinationPort);
        }
        if (key.Protocol == 6)
            l4Header[12] = 5 << 4;
        return frame;
    }
}
