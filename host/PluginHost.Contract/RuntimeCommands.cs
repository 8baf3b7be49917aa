namespace PluginHost.Contract;

/// <summary>What a runtime command does to the stage's settings list it targets.</summary>
public enum RuntimeAction
{
    /// <summary>Add an item built from the arguments (replacing one with the same key).</summary>
    Add,
    /// <summary>Remove the item whose key field equals the key argument.</summary>
    Remove,
    /// <summary>Show the items in effect (configuration plus runtime changes).</summary>
    List,
    /// <summary>Set the scalar setting named by Collection to the value of the argument named by Key (e.g. a table file).</summary>
    Set,
}

/// <summary>One argument of a runtime command; becomes a field of the item (<c>--from 198.18.1.0/24</c> → <c>from</c>).</summary>
/// <param name="Name">The option name (<c>--Name</c>) and the item field it fills.</param>
/// <param name="Description">One line for --help.</param>
/// <param name="Required">Whether the command needs it.</param>
/// <param name="IsPath">A file path: the CLI sends it made absolute against the operator's working directory
/// (the host runs elsewhere); a relative path that still arrives is relative to the configuration file.</param>
public sealed record CommandArgument(string Name, string Description, bool Required = true, bool IsPath = false);

/// <summary>
/// A command operators run against a live stage (<c>pluginhost route add --from ... --interface ...</c>)
/// without a reload. It edits one list in the stage's settings: the host keeps the edits in a
/// desired-state file beside the configuration, validates the result through the plugin's own
/// <see cref="IRoutingPlugin.Configure"/> exactly like configuration, and applies it as map updates.
/// </summary>
/// <param name="Noun">First word, e.g. <c>route</c>.</param>
/// <param name="Verb">Second word, e.g. <c>add</c>.</param>
/// <param name="Description">One line for --help.</param>
/// <param name="Collection">The settings list it edits, e.g. <c>routes</c>.</param>
/// <param name="Key">The item field that identifies an item, e.g. <c>from</c>.</param>
/// <param name="Action">Add, remove or list.</param>
/// <param name="Arguments">Item fields taken from the command line (for Remove: just the key).</param>
public sealed record RuntimeCommand(string Noun, string Verb, string Description, string Collection, string Key,
    RuntimeAction Action, IReadOnlyList<CommandArgument> Arguments);

/// <summary>Implemented by a plugin (on its <see cref="IRoutingPlugin"/> class) that offers runtime commands.</summary>
public interface IRuntimeCommands
{
    /// <summary>The commands, each named by noun and verb.</summary>
    IReadOnlyList<RuntimeCommand> Commands { get; }
}
