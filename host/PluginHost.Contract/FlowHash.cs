namespace PluginHost.Contract;

/// <summary>
/// The datapath's flow hash (<c>ph_flow_hash</c> and <c>ph_mix32</c> in the templates), in C#: the same numbers
/// for the same flow, so a plugin can predict where a flow goes (canaries, tests). Addresses and ports are
/// host-order numbers (a.b.c.d = a&lt;&lt;24 | b&lt;&lt;16 | c&lt;&lt;8 | d). (Contract 1.1.)
/// </summary>
public static class FlowHash
{
    /// <summary>lowbias32: a 32-bit mix with good avalanche.</summary>
    public static uint Mix(uint h)
    {
        unchecked
        {
            h ^= h >> 16;
            h *= 0x7feb352dU;
            h ^= h >> 15;
            h *= 0x846ca68bU;
            h ^= h >> 16;
            return h;
        }
    }

    /// <summary>The hash of a flow; pass 0 ports for fragments and protocols without ports.</summary>
    public static uint Flow(uint source, uint destination, byte protocol, ushort sourcePort, ushort destinationPort) =>
        Mix(source ^ uint.RotateLeft(destination, 7) ^ ((uint)sourcePort << 16 | destinationPort) ^ ((uint)protocol << 24));
}
