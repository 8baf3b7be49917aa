namespace PluginHost.Plugins.FiveTuplePolicy.Classifier;

/// <summary>
/// The reference: every rule in order, the first that matches wins (<see cref="RuleMatch.Matches"/>). Its cost
/// grows with the rules; the tree is correct when it agrees with this on every packet.
/// </summary>
internal sealed class LinearMatcher
{
    private readonly RuleMatch[] _rules;

    public LinearMatcher(IReadOnlyList<RuleMatch> rules) => _rules = [.. rules];

    /// <summary>The index of the first rule that matches <paramref name="key"/>, or -1.</summary>
    public int Match(in PacketKey key)
    {
        var rules = _rules.AsSpan();
        for (int i = 0; i < rules.Length; i++)
            if (rules[i].Matches(key))
                return i;
        return -1;
    }
}
