namespace PluginHost.Contract;

/// <summary>Version of the plugin contract. A plugin built against another major version is refused.</summary>
public static class ContractInfo
{
    /// <summary>Incremented on every breaking change of the contract.</summary>
    public static int Major => typeof(ContractInfo).Assembly.GetName().Version!.Major;
}
