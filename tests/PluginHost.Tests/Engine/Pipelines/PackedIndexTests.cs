using PluginHost.Pipelines;
using Xunit;

namespace PluginHost.Tests.Engine.Pipelines;

[Trait("Category", "Unit")]
public sealed class PackedIndexTests
{
    private static PackedEntries Entries(params (uint Key, byte Value)[] entries)
    {
        var packed = new PackedEntries(4, 1);
        foreach (var (key, value) in entries)
            packed.Add(BitConverter.GetBytes(key), [value]);
        return packed;
    }

    [Fact]
    public void FindsEveryKeyAndNothingElse()
    {
        var packed = new PackedEntries(4, 1);
        for (uint i = 0; i < 10_000; i++)
            packed.Add(BitConverter.GetBytes(i * 7919), [(byte)i]);

        var index = new PackedIndex(packed);

        for (int i = 0; i < 10_000; i++)
            Assert.Equal(i, index.Find(BitConverter.GetBytes((uint)i * 7919)));
        Assert.Equal(-1, index.Find(BitConverter.GetBytes(1u)));
        Assert.Equal(-1, new PackedIndex(Entries()).Find(BitConverter.GetBytes(0u)));
    }

    [Fact]
    public void ADuplicateKeyIsFoundAtItsLastOccurrenceAsABatchUpdateLeavesIt()
    {
        var index = new PackedIndex(Entries((5, 1), (6, 2), (5, 3)));

        Assert.Equal(2, index.Find(BitConverter.GetBytes(5u)));
        Assert.Equal(3, index.Entries.Value(index.Find(BitConverter.GetBytes(5u)))[0]);
        Assert.Equal(1, index.Find(BitConverter.GetBytes(6u)));
    }
}
