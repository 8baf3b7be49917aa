using PluginHost.Bench.Packets;
using PluginHost.Kernel;

namespace PluginHost.Bench.Scenarios;

/// <summary>What a program must do with a frame: its tc return code and, for a redirect, where to.</summary>
public sealed record Expectation(int ReturnValue, int? RedirectIfindex = null)
{
    public const int TcxNext = -1;
    public const int TcActShot = 2;
    public const int TcActRedirect = 7;

    public static readonly Expectation Pass = new(TcxNext);

    public bool Redirects => ReturnValue == TcActRedirect;

    public string Verdict => Redirects ? "redirect" : ReturnValue == TcxNext ? "pass" : ReturnValue == TcActShot ? "drop" : $"rc {ReturnValue}";
}

/// <summary>
/// A program under test with what it must do to each frame shape. It may be loaded several times (<see cref="AddCopy"/>):
/// where the JIT places a program moves its cost by a few percent from load to load, so rounds rotate over the copies.
/// </summary>
public sealed class Subject(string id, string label, string group, BpfProgram program, Func<FrameShape, Expectation> expect, IDisposable? owner = null)
    : IDisposable
{
    private readonly List<(BpfProgram Program, IDisposable? Owner)> _copies = [(program, owner)];

    /// <summary>Another load of the same program, measured in turn with the others.</summary>
    public void AddCopy(BpfProgram copy, IDisposable? copyOwner) => _copies.Add((copy, copyOwner));

    /// <summary>The copy measured in round <paramref name="round"/>.</summary>
    public BpfProgram ProgramFor(int round) => _copies[round % _copies.Count].Program;

    /// <summary>Index of skb->cb[4] in the test run's output context: the ifindex a chain stage redirected to.</summary>
    private const int RedirectIfindexCb = 4;

    public string Id { get; } = id;
    public string Label { get; } = label;
    public string Group { get; } = group;
    public Expectation Expect(FrameShape shape) => expect(shape);

    /// <summary>Run the frame once through every copy and check the verdict, the redirect target and the TTL decrement, so that the path measured is the one meant.</summary>
    public void Verify(FrameShape shape, byte[] frame)
    {
        foreach (var (copy, _) in _copies)
            Verify(copy, shape, frame);
    }

    private void Verify(BpfProgram copy, FrameShape shape, byte[] frame)
    {
        var expected = expect(shape);
        var run = copy.TestRun(frame);
        string? problem = null;
        if (run.ReturnValue != expected.ReturnValue)
            problem = $"expected {expected.Verdict} ({expected.ReturnValue}), got {run.ReturnValue}";
        else if (expected.RedirectIfindex is int ifindex && run.Cb[RedirectIfindexCb] != ifindex)
            problem = $"expected redirect to ifindex {ifindex}, got {run.Cb[RedirectIfindexCb]}";
        else if (expected.Redirects && !shape.Ipv6 && run.Output[Frames.Ipv4TtlOffset] != frame[Frames.Ipv4TtlOffset] - 1)
            problem = $"expected TTL {frame[Frames.Ipv4TtlOffset] - 1} after forwarding, got {run.Output[Frames.Ipv4TtlOffset]}";
        if (problem is not null)
            throw new BenchException($"verify {Label} with {shape.Label}: {problem}");
    }

    public void Dispose()
    {
        foreach (var (copy, copyOwner) in _copies)
        {
            copy.Dispose();
            copyOwner?.Dispose();
        }
    }
}
