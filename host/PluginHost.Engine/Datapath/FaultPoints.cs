namespace PluginHost.Datapath;

/// <summary>
/// Named steps of an apply where a test can stop the host dead, to prove that a crash at any of them never costs
/// traffic. Set <c>PLUGINHOST_FAULT_POINT</c> to a name below (or several, comma-separated) and the host kills
/// itself with SIGKILL when it reaches that step; unset (always, in production), reaching a point does nothing.
/// </summary>
internal static class FaultPoints
{
    public const string Variable = "PLUGINHOST_FAULT_POINT";

    public const string AfterCompile = "after-compile";
    public const string AfterLoad = "after-load";
    public const string AfterFill = "after-fill";
    public const string AfterCanary = "after-canary";
    public const string AfterStateWrite = "after-state-write";
    public const string AfterLinkUpdate = "after-link-update";
    public const string DuringRetire = "during-retire";

    /// <summary>Every point, in the order an apply reaches them.</summary>
    public static IReadOnlyList<string> All { get; } = [AfterCompile, AfterLoad, AfterFill, AfterCanary, AfterStateWrite, AfterLinkUpdate, DuringRetire];

    private static readonly HashSet<string> Armed = (Environment.GetEnvironmentVariable(Variable) ?? "")
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();

    /// <summary>The process-wide hook: kills the host at an armed point.</summary>
    internal static Action<string> FromEnvironment { get; } = point =>
    {
        if (Armed.Count == 0 || !Armed.Contains(point))
            return;
        Console.Error.WriteLine($"pluginhost: fault point {point} reached ({Variable}): killing the host");
        Console.Error.Flush();
        System.Diagnostics.Process.GetCurrentProcess().Kill();
    };
}
