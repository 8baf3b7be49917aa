using PluginHost.Compose;
using PluginHost.Contract;
using PluginHost.Datapath;
using PluginHost.Pipelines;
using Xunit;

namespace PluginHost.Tests.Engine.Datapath;

/// <summary>
/// The difference a configuration map is changed by, on random maps: whether what the map holds is remembered in key
/// order (compared by one merge) or read back in another order (compared through an index), the map ends holding the
/// desired entries, only differing entries are written, the count matches, and undo puts every entry back.
/// </summary>
[Trait("Category", "Unit")]
public sealed class MapReconcilerTests
{
    private const string Pin = "/sys/fs/bpf/fake/p/maps/m";

    private static MapDecision Decision(MapKind kind, int keySize, PackedEntries desired)
    {
        var key = keySize == 4 ? new Field[] { new("k", FieldType.U32) } : [new("k", FieldType.U32), new("k2", FieldType.U32)];
        var schema = new MapSchema("m", kind, key, [new("v", FieldType.U32)], 4096);
        var map = new StageMap(0, "P-0", schema);
        return new MapDecision(new StageSpec(0, "P", "P-0", "ph_entry", [map]), map, MapFate.Reused, Pin, null, desired);
    }

    private static byte[] Key(int keySize, int k)
    {
        var key = new byte[keySize];
        BitConverter.GetBytes(k).CopyTo(key, 0);
        if (keySize == 8)
            BitConverter.GetBytes(k * 7).CopyTo(key, 4);
        return key;
    }

    public static TheoryData<MapKind, int, bool> Cases() => new()
    {
        { MapKind.Array, 4, true }, { MapKind.Array, 4, false }, { MapKind.Hash, 4, true }, { MapKind.Hash, 8, true }, { MapKind.Hash, 8, false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_map_ends_holding_the_desired_entries_and_undo_puts_it_back(MapKind kind, int keySize, bool remembered)
    {
        var random = new Random(keySize * 31 + (int)kind * 7 + (remembered ? 1 : 0));
        for (int round = 0; round < 200; round++)
        {
            var kernel = new FakeKernel();
            var map = new FakeKernel.FakeMap(kernel, "m");
            var held = new PackedEntries(keySize, 4);
            int size = random.Next(0, 300);
            for (int k = 0; k < size; k++)
                if (random.Next(4) > 0)
                    held.Add(Key(keySize, k), BitConverter.GetBytes(random.Next(1, 5)));
            for (int i = 0; i < held.Count; i++)
                map.Update(held.Key(i), held.Value(i));
            var before = map.Entries.ToDictionary(e => e.Key, e => e.Value);

            // Mostly the same entries in the same order (a table rebuilt from the same input), some changed, some new,
            // some gone; sometimes shuffled, sometimes with a key given twice (the last wins, as in the kernel).
            var desired = new PackedEntries(keySize, 4);
            var wanted = new List<(byte[] Key, byte[] Value)>();
            for (int k = 0; k < size + random.Next(0, 20); k++)
                if (random.Next(5) > 0)
                    wanted.Add((Key(keySize, k), BitConverter.GetBytes(random.Next(10) == 0 ? random.Next(1, 5) : k < size ? ValueOf(before, keySize, k) : 9)));
            int shape = random.Next(6);
            if (shape == 0)
                wanted = wanted.OrderBy(_ => random.Next()).ToList();
            if (shape == 1 && wanted.Count > 2)
                wanted.Add((wanted[random.Next(wanted.Count)].Key, BitConverter.GetBytes(7)));
            foreach (var (k, v) in wanted)
                desired.Add(k, v);

            var memory = new MapContentsMemory();
            if (remembered)
                memory.Set(Pin, new PackedIndex(held));
            var decision = Decision(kind, keySize, desired);
            int differences = new MapReconciler(memory, null).Differences(decision, map);
            map.Log.Clear();
            var change = new MapReconciler(memory, null).Reconcile(decision, map);

            var expected = new Dictionary<string, byte[]>(before);
            foreach (var (k, v) in wanted)
                expected[Convert.ToHexString(k)] = v;
            foreach (var k in before.Keys.Except(wanted.Select(w => Convert.ToHexString(w.Key))))
                if (kind == MapKind.Array)
                    expected[k] = new byte[4];
                else
                    expected.Remove(k);
            Assert.Equal(Sorted(expected), Sorted(map.Entries));
            Assert.Equal(differences, change.Entries);
            // Nothing equal is written: every write changed a value or added a key (a repeated key is written each time).
            int repeated = wanted.Count - wanted.Select(w => Convert.ToHexString(w.Key)).Distinct().Count();
            Assert.InRange(map.Log.Count, change.Entries, change.Entries + 2 * repeated);

            change.Undo();
            var restored = map.Entries.Where(e => kind != MapKind.Array || e.Value.Any(b => b != 0)).ToDictionary(e => e.Key, e => e.Value);
            Assert.Equal(Sorted(before), Sorted(restored));
        }
    }

    private static int ValueOf(Dictionary<string, byte[]> entries, int keySize, int k) =>
        entries.TryGetValue(Convert.ToHexString(Key(keySize, k)), out var v) ? BitConverter.ToInt32(v) : 3;

    private static List<string> Sorted(IEnumerable<KeyValuePair<string, byte[]>> entries) =>
        entries.Select(e => $"{e.Key}={Convert.ToHexString(e.Value)}").Order(StringComparer.Ordinal).ToList();

    [Fact]
    public void Keys_in_index_order_are_ascending_and_others_are_not()
    {
        var indexes = new PackedEntries(4, 4);
        foreach (int k in new[] { 1, 255, 256, 70000 })
            indexes.Add(BitConverter.GetBytes(k), BitConverter.GetBytes(0));
        Assert.True(KeyOrder.Ascending(indexes)); // 256 after 255 as numbers, though its first byte is smaller
        indexes.Add(BitConverter.GetBytes(70000), BitConverter.GetBytes(0));
        Assert.False(KeyOrder.Ascending(indexes)); // a repeated key is not ascending
    }
}
