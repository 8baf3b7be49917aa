using System.CommandLine;
using PluginHost.Cli.Commands;

var root = new RootCommand("PluginHost: compose routing-strategy plugins into one eBPF tc chain, load it and swap it without losing packets.")
{
    RunCommand.Create(),
    ValidateCommand.Create(),
    ReloadCommand.Create(),
    StatusCommand.Create(),
    StatsCommand.Create(),
    ControlCommands.Pipeline(),
    ControlCommands.Plugins(),
    CheckCommand.Plugin(),
    UninstallCommand.Create(),
    DemoCommand.Create(),
};
// Plugins' runtime commands (route add, ...) are discovered only when the first word is not a built-in one.
if (args.Length > 0 && !args[0].StartsWith('-') && root.Subcommands.All(c => c.Name != args[0]))
    foreach (var command in ControlCommands.Runtime(args))
        root.Subcommands.Add(command);
return root.Parse(args).Invoke();
