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
// Plugins' runtime commands (route add, ...) are discovered only when the first word is not a built-in one,
// or for `pluginhost --help [--config FILE]`, which lists them: from the running host, else from the configuration's plugins.
if (args.Length > 0 && args[0] is "--help" or "-h" or "-?")
{
    var verbs = ControlCommands.Runtime(args, quiet: true).ToList();
    foreach (var command in verbs)
        root.Subcommands.Add(command);
    root.Description += verbs.Count > 0
        ? "\n\nPlugins' runtime commands (" + string.Join(", ", verbs.SelectMany(n => n.Subcommands.Select(v => $"{n.Name} {v.Name}"))) + ") come from " +
          "the running host, or the plugins directory of --config."
        : "\n\nPlugins' runtime commands (route add, rule list, ...) are listed here while a host runs, or with --help --config FILE.";
    args = ["--help"];
}
else if (args.Length > 0 && !args[0].StartsWith('-') && root.Subcommands.All(c => c.Name != args[0]))
    foreach (var command in ControlCommands.Runtime(args))
        root.Subcommands.Add(command);
return root.Parse(args).Invoke();
