using System.Buffers;
using System.Text;

namespace PluginHost.Plugins.LoadBalancer.Maglev;

/// <summary>
/// The fixed hash that turns a backend's key into its Maglev permutation (offset and skip). It must never change:
/// every host that builds a table for the same backends has to get the same table, and a changed hash would move
/// every flow at the next rebuild.
/// <para>h = 64-bit FNV-1a of the key's UTF-8 bytes; offset and skip come from the first two outputs of
/// SplitMix64 seeded with h. FNV-1a alone mixes its last bytes poorly into the high bits (keys that differ in
/// the last character, "up1"/"up2", differ little), and the SplitMix64 finalizer spreads every bit of h over the
/// whole word; two outputs give the two independent hashes the Maglev paper asks for.</para>
/// </summary>
internal static class MaglevHash
{
    private const ulong FnvOffsetBasis = 0xCBF29CE484222325;
    private const ulong FnvPrime = 0x00000100000001B3;
    private const ulong GoldenGamma = 0x9E3779B97F4A7C15; // SplitMix64's increment
    private const int StackBytes = 512;

    /// <summary>64-bit FNV-1a of <paramref name="bytes"/>.</summary>
    public static ulong Fnv1a64(ReadOnlySpan<byte> bytes)
    {
        ulong hash = FnvOffsetBasis;
        foreach (byte b in bytes)
        {
            hash ^= b;
            hash *= FnvPrime;
        }
        return hash;
    }

    /// <summary>64-bit FNV-1a of the UTF-8 bytes of <paramref name="key"/> (no allocation for keys up to a few hundred characters).</summary>
    public static ulong Fnv1a64(string key)
    {
        int max = Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = max > StackBytes ? ArrayPool<byte>.Shared.Rent(max) : null;
        Span<byte> buffer = rented ?? stackalloc byte[StackBytes];
        try
        {
            int length = Encoding.UTF8.GetBytes(key, buffer);
            return Fnv1a64(buffer[..length]);
        }
        finally
        {
            if (rented != null)
                ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>SplitMix64's output function (Steele, Lea, Flood 2014; the constants are the published ones).</summary>
    public static ulong Mix64(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }

    /// <summary>
    /// The key's permutation of a table of <paramref name="size"/> (a prime) entries: its j-th preferred entry is
    /// (offset + j × skip) mod size. offset is in [0, size), skip in [1, size): as size is prime, any such skip
    /// visits every entry once in size steps.
    /// </summary>
    public static (int Offset, int Skip) Permutation(string key, int size)
    {
        ulong h = Fnv1a64(key);
        ulong offsetHash = Mix64(h + GoldenGamma);
        ulong skipHash = Mix64(unchecked(h + 2 * GoldenGamma));
        return ((int)(offsetHash % (ulong)size), (int)(skipHash % (ulong)(size - 1)) + 1);
    }
}
