using PluginHost.Bench.Setup;
using PluginHost.Compile;
using PluginHost.Kernel;

namespace PluginHost.Bench.Scenarios;

/// <summary>
/// The programs of <c>bench/handwritten/</c>, compiled with the engine's <see cref="ClangCompiler"/> and
/// loaded with <see cref="BpfObject"/>: the floor (<c>pass.bpf.c</c>) and the hand-written router
/// (<c>router.bpf.c</c>) with the same four route tables as the 4-stage chain.
/// </summary>
public static class Handwritten
{
    public const int RouterStages = 4;

    public static BpfProgram LoadPass(Repo repo, ClangCompiler compiler) =>
        Load(repo, compiler, "pass.bpf.c", "bench_pass", _ => { });

    public static BpfProgram LoadRouter(Repo repo, ClangCompiler compiler, Sandbox sandbox) =>
        Load(repo, compiler, "router.bpf.c", "router", obj =>
        {
            var tables = PolicyRoutes.Chain(RouterStages);
            for (int i = 0; i < RouterStages; i++)
            {
                using var map = obj.Map($"routes{i}");
                foreach (var route in tables[i])
                    map.Update(Key(route), Value(route, sandbox.Ifindex(route.Interface)));
            }
        });

    private static BpfProgram Load(Repo repo, ClangCompiler compiler, string file, string program, Action<BpfObject> fill)
    {
        string path = Path.Combine(repo.HandwrittenDirectory, file);
        try
        {
            var compiled = compiler.Compile(File.ReadAllText(path), Path.GetFileNameWithoutExtension(path).Replace('.', '-'));
            using var obj = BpfObject.Open(compiled.ObjectPath);
            obj.Load();
            fill(obj);
            return obj.Program(program);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new BenchException($"load {Path.GetRelativePath(repo.Root, path)}: {e.Message}", e);
        }
    }

    // struct route_key { __u32 prefixlen; __be32 addr; }
    private static byte[] Key(SourceRoute route)
    {
        var key = new byte[8];
        BitConverter.TryWriteBytes(key, (uint)route.Length); // host order
        route.Prefix.GetAddressBytes().CopyTo(key, 4);
        return key;
    }

    // struct route { __u32 ifindex; __be32 nexthop; }
    private static byte[] Value(SourceRoute route, int ifindex)
    {
        var value = new byte[8];
        BitConverter.TryWriteBytes(value, (uint)ifindex);
        route.Via.GetAddressBytes().CopyTo(value, 4);
        return value;
    }
}
