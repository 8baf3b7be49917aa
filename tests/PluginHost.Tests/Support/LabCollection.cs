using Xunit;

namespace PluginHost.Tests.Support;

/// <summary>
/// Lab tests run one at a time: they push real traffic through namespaces on a 2-CPU machine and assert rates
/// and latencies, which tests running beside them (or each other) would turn into flakes.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LabCollection
{
    public const string Name = "Lab";
}
