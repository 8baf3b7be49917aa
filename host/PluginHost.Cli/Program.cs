using System.CommandLine;
using PluginHost.Cli.Commands;

var root = new RootCommand("PluginHost: compose routing-strategy plugins into one eBPF tc chain, load it and swap it without losing packets.")
{
    RunCommand.Create(),
    ValidateCommand.Create(),
    ReloadCommand.Create(),
    StatusCommand.Create(),
    StatsCommand.Create(),
    UninstallCommand.Create(),
    DemoCommand.Create(),
};
return root.Parse(args).Invoke();
