using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using McMaster.NETCore.Plugins;
using PluginHost.Compose;
using PluginHost.Config;
using PluginHost.Contract;

namespace PluginHost.Plugins;

/// <summary>
/// A loaded plugin: its instance (for <c>Configure</c> and migrations) and host-owned copies of everything else it
/// declares, each read once, guarded, when it was loaded (a property that throws fails the load, not a listing or a reload).
/// </summary>
public sealed class LoadedPlugin
{
    internal LoadedPlugin(IRoutingPlugin instance, string assemblyPath, string name, string description, StageTemplate template,
        IReadOnlyList<MapSchema> maps, IReadOnlyList<RuntimeCommand> commands)
    {
        Instance = instance;
        AssemblyPath = assemblyPath;
        Name = name;
        Description = description;
        Template = template;
        Maps = maps;
        Commands = commands;
        var assembly = instance.GetType().Assembly;
        Version = assembly.GetName().Version?.ToString() ?? "";
        InformationalVersion = System.Reflection.CustomAttributeExtensions
            .GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>(assembly)?.InformationalVersion ?? Version;
    }

    public IRoutingPlugin Instance { get; }
    public string AssemblyPath { get; }
    public string Name { get; }
    public string Description { get; }
    public StageTemplate Template { get; }
    public IReadOnlyList<MapSchema> Maps { get; }

    /// <summary>Its runtime commands (none unless it implements <see cref="IRuntimeCommands"/>).</summary>
    public IReadOnlyList<RuntimeCommand> Commands { get; }

    public string Version { get; }

    /// <summary>The assembly's informational version (what its project's <c>Version</c> says, with a source revision when
    /// the SDK adds one); its <see cref="Version"/> when it has none.</summary>
    public string InformationalVersion { get; }
}

/// <summary>A plugin folder the configuration does not name: listed, never loaded (only its files and metadata are checked).</summary>
/// <param name="Problem">Why it would not load if named; null when nothing is wrong with it.</param>
public sealed record UnusedPlugin(string Name, string AssemblyPath, string? Problem);

/// <summary>
/// The plugins the configuration names, from a directory of one folder per plugin (<c>NAME/NAME.dll</c>), each in its own
/// collectible load context that shares only the contract with the host. Nothing else in the directory is loaded, and a
/// plugin is loaded only once <see cref="PluginTrust"/> accepts its files. Dispose unloads them: copy what you need out of
/// the plugins first.
/// </summary>
public sealed class PluginCatalog : IDisposable
{
    // One plugin folder as loaded: what its files were (signature), its load context, what it gave.
    private sealed class Folder(string name, string path, string signature)
    {
        public string Name { get; } = name;
        public string Path { get; } = path;
        public string Signature { get; } = signature;
        public PluginLoader? Loader { get; set; }
        public LoadedPlugin? Plugin { get; set; }
        public string? Error { get; set; }
    }

    private readonly List<Folder> _folders = [];
    private readonly Dictionary<string, LoadedPlugin> _plugins = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _failed = new(StringComparer.Ordinal);
    private readonly List<UnusedPlugin> _unused = [];

    private PluginCatalog(string directory) => Directory = directory;

    public string Directory { get; }

    /// <summary>The named plugins that loaded, by name.</summary>
    public IReadOnlyDictionary<string, LoadedPlugin> Plugins => _plugins;

    /// <summary>The named plugins that did not load, with why ("load plugin X: ..."); only the stages using them fail.</summary>
    public IReadOnlyDictionary<string, string> Failed => _failed;

    /// <summary>Plugin folders the configuration does not name: not loaded; their problems block nothing.</summary>
    public IReadOnlyList<UnusedPlugin> Unused => _unused;

    /// <summary>Every problem: the named plugins that failed, then unused folders that would.</summary>
    public IReadOnlyList<string> Errors =>
        _failed.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => f.Value)
            .Concat(_unused.Where(u => u.Problem is not null).Select(u => $"unused plugin folder {u.Name} (not loaded): {u.Problem}")).ToList();

    /// <summary>The plugin names a configuration uses (its stages' <c>plugin:</c>), each once.</summary>
    public static IReadOnlyList<string> NamesIn(HostConfig config) =>
        config.Pipelines.SelectMany(p => p.Stages).Select(s => s.Plugin).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Load the plugins <paramref name="names"/> from <paramref name="directory"/>. Folders whose files are unchanged since
    /// <paramref name="reuse"/> loaded them are taken over from it, loaded and JIT-compiled already (and no longer
    /// unloaded with it): changing one plugin does not reload the others. Trust is checked again for every one.
    /// </summary>
    public static PluginCatalog Load(string directory, IEnumerable<string> names, PluginCatalog? reuse = null)
    {
        var catalog = new PluginCatalog(directory);
        var wanted = names.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        bool exists = System.IO.Directory.Exists(directory);
        string? directoryProblem = !exists ? $"the plugins directory {directory} does not exist"
            : PluginTrust.Check(directory, PluginTrust.DirectoryRule);
        string? allowListProblem = null;
        var allowList = exists && directoryProblem is null ? PluginTrust.AllowList.Read(directory, out allowListProblem) : null;
        foreach (var name in wanted)
        {
            string path = System.IO.Path.Combine(directory, name);
            if (!StageMap.Identifier().IsMatch(name) || name.Length > 32)
                catalog._failed[name] = $"load plugin {name}: not a plugin name (a C identifier of at most 32 characters, the name of its folder and DLL)";
            else if ((directoryProblem ?? allowListProblem) is { } problem)
                catalog._failed[name] = $"load plugin {name}: {problem}";
            else if (Unknown(directory, name) is { } unknown)
                catalog._failed[name] = unknown;
            else if (Untrusted(directory, path, allowList) is { } untrusted)
                catalog._failed[name] = $"load plugin {name}: {untrusted}";
            if (catalog._failed.ContainsKey(name))
                continue;
            // The same files as a folder the previous catalog loaded (or failed to load): take its outcome over, run nothing again.
            string signature = Signature(path);
            var folder = reuse?._folders.FirstOrDefault(f => f.Path == path && f.Signature == signature);
            if (folder is not null)
                reuse!.Release(folder);
            else
            {
                folder = new Folder(name, path, signature);
                LoadOne(System.IO.Path.Combine(path, name + ".dll"), folder);
            }
            catalog.Add(folder);
        }
        if (exists)
            catalog.ListUnused(wanted);
        return catalog;
    }

    /// <summary>
    /// Plugins already loaded in this process (PluginHost.Testing runs a test's own plugin objects): each read and checked
    /// as a folder's plugin is, by its <see cref="IRoutingPlugin.Name"/>; nothing is unloaded with the catalog.
    /// </summary>
    internal static PluginCatalog InProcess(IEnumerable<IRoutingPlugin> plugins)
    {
        var catalog = new PluginCatalog("(in process)");
        foreach (var plugin in plugins)
        {
            string dll = plugin.GetType().Assembly.Location;
            string name;
            var folder = new Folder("?", dll, "");
            try
            {
                name = Read("Name", () => plugin.Name) ?? throw new PluginMemberException("its Name is null");
                folder = new Folder(name, dll, "");
                folder.Plugin = Copy(plugin, dll, name);
            }
            catch (PluginMemberException e)
            {
                folder.Error = $"load plugin {plugin.GetType().FullName} ({dll}): {e.Message}";
            }
            catalog.Add(folder);
        }
        return catalog;
    }

    // Null when NAME/NAME.dll is there; else the "unknown plugin" problem, naming what is there.
    private static string? Unknown(string directory, string name)
    {
        if (File.Exists(System.IO.Path.Combine(directory, name, name + ".dll")))
            return null;
        var available = FolderNames(directory).ToList();
        string folder = System.IO.Path.Combine(directory, name);
        string mismatch = System.IO.Directory.Exists(folder) && Mismatched(folder) is { } problem ? $"; {name}/ {problem}" : "";
        return $"unknown plugin '{name}': no {name}/{name}.dll in {directory} (available: {(available.Count == 0 ? "none" : string.Join(", ", available))}){mismatch}";
    }

    /// <summary>The rule a plugin folder follows: named after the plugin (the name configuration uses), holding NAME.dll.</summary>
    public const string NamingRule = "a plugin's folder and its DLL both carry the plugin's name, the one configuration uses (NAME/NAME.dll)";

    // A folder holding DLLs, none of them named after it: a plugin whose folder or DLL was named otherwise.
    private static string? Mismatched(string folder)
    {
        string name = System.IO.Path.GetFileName(folder);
        var dlls = System.IO.Directory.GetFiles(folder, "*.dll").Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        return dlls.Count == 0 || dlls.Contains(name + ".dll") ? null
            : $"holds {string.Join(", ", dlls.Take(5))}{(dlls.Count > 5 ? ", ..." : "")} but no {name}.dll: {NamingRule}";
    }

    // The folders of the directory that hold their DLL (NAME/NAME.dll).
    private static IEnumerable<string> FolderNames(string directory) =>
        System.IO.Directory.GetDirectories(directory).Select(System.IO.Path.GetFileName).OfType<string>()
            .Where(n => File.Exists(System.IO.Path.Combine(directory, n, n + ".dll"))).Order(StringComparer.Ordinal);

    // Null when the folder, everything in it, and (with an allow-list) every DLL's hash are trusted.
    private static string? Untrusted(string directory, string folder, PluginTrust.AllowList? allowList)
    {
        if (PluginTrust.Check(folder, PluginTrust.PluginRule) is { } problem)
            return problem;
        foreach (var entry in System.IO.Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            if (PluginTrust.Check(entry, PluginTrust.PluginRule) is { } inside)
                return inside;
        if (allowList is null)
            return null;
        foreach (var relative in PluginTrust.Dlls(directory, folder))
        {
            string file = System.IO.Path.Combine(directory, relative);
            if (allowList.Problem(relative, file, PluginTrust.Sha256(file)) is { } pinned)
                return pinned;
        }
        return null;
    }

    // The folders nobody named: checked without running any of their code, so a listing can say what is wrong with them.
    private void ListUnused(IReadOnlyCollection<string> wanted)
    {
        // Folders with DLLs but none named after them are not skipped silently: they are what a misnamed plugin looks like.
        foreach (var folder in System.IO.Directory.GetDirectories(Directory).Order(StringComparer.Ordinal))
            if (System.IO.Path.GetFileName(folder) is { } name && !wanted.Contains(name) && Mismatched(folder) is { } mismatch)
                _unused.Add(new UnusedPlugin(name, System.IO.Path.Combine(folder, name + ".dll"), mismatch));
        foreach (var name in FolderNames(Directory).Where(n => !wanted.Contains(n)))
        {
            string folder = System.IO.Path.Combine(Directory, name);
            string dll = System.IO.Path.Combine(folder, name + ".dll");
            string? problem = PluginTrust.Check(folder, PluginTrust.PluginRule) ?? PluginTrust.Check(dll, PluginTrust.PluginRule);
            if (problem is null)
                problem = StaticProblem(dll);
            _unused.Add(new UnusedPlugin(name, dll, problem));
        }
    }

    // A folder's files: DLLs by content (a copy that keeps the old time and size still counts as a change), others by size and time.
    internal static string Signature(string folder) =>
        string.Join('\n', new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories)
            .Select(f => f.Extension == ".dll"
                ? $"{f.FullName}|{PluginTrust.Sha256(f.FullName)}"
                : $"{f.FullName}|{f.Length}|{f.LastWriteTimeUtc.Ticks}")
            .Order(StringComparer.Ordinal));

    private void Add(Folder folder)
    {
        _folders.Add(folder);
        if (folder.Plugin is { } plugin)
            _plugins[folder.Name] = plugin;
        else
            _failed[folder.Name] = folder.Error ?? $"load plugin {folder.Name}: it did not load";
    }

    // Hand a folder over to another catalog: this one no longer lists it or unloads it.
    private void Release(Folder folder)
    {
        _folders.Remove(folder);
        _plugins.Remove(folder.Name);
    }

    // What can be told of a DLL without running it: is it .NET, does it reference the contract, of the right major.
    private static string? StaticProblem(string dll)
    {
        Version? referenced;
        try
        {
            referenced = ReferencedContractVersion(dll);
        }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException or IOException)
        {
            return $"{dll} is not a .NET assembly ({e.Message})";
        }
        if (referenced is null)
            return $"{dll} does not reference PluginHost.Contract";
        return ContractCheck.Problem(System.IO.Path.GetFileName(dll), referenced, typeof(IRoutingPlugin).Assembly.GetName().Version!);
    }

    private static void LoadOne(string dll, Folder folder)
    {
        string name = folder.Name;
        if (StaticProblem(dll) is { } problem)
        {
            folder.Error = problem.StartsWith("load plugin ", StringComparison.Ordinal) ? problem : $"load plugin {name}: {problem}";
            return;
        }

        // In memory: a DLL overwritten in place later must not change code that is already loaded.
        var loader = PluginLoader.CreateFromAssemblyFile(dll, isUnloadable: true, sharedTypes: [typeof(IRoutingPlugin)],
            configure: c => c.LoadInMemory = true);
        folder.Loader = loader;
        try
        {
            var types = loader.LoadDefaultAssembly().GetTypes()
                .Where(t => typeof(IRoutingPlugin).IsAssignableFrom(t) && !t.IsAbstract && t.GetConstructor(Type.EmptyTypes) is not null)
                .ToList();
            if (types.Count == 0)
            {
                folder.Error = $"load plugin {name} ({dll}): no class implements IRoutingPlugin with a public parameterless constructor";
                return;
            }
            var found = new List<string>();
            foreach (var type in types)
            {
                IRoutingPlugin instance;
                try
                {
                    instance = (IRoutingPlugin)Activator.CreateInstance(type)!;
                }
                catch (System.Reflection.TargetInvocationException e) when (e.InnerException is { } inner and not OutOfMemoryException)
                {
                    throw new PluginMemberException($"its constructor threw {inner.GetType().Name}: {inner.Message}");
                }
                string actual = Read("Name", () => instance.Name);
                found.Add(actual);
                if (actual != name)
                    continue;
                if (folder.Plugin is not null)
                {
                    folder.Error = $"load plugin {name} ({dll}): two classes are named '{name}'";
                    folder.Plugin = null;
                    return;
                }
                folder.Plugin = Copy(instance, dll, name);
            }
            if (folder.Plugin is null)
                folder.Error = $"load plugin {name} ({dll}): it offers no plugin named '{name}' (its plugins: {string.Join(", ", found.Select(f => $"'{f}'"))}; " +
                    "the folder, the DLL and the plugin's Name must be the same)";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            folder.Plugin = null;
            folder.Error = e is PluginMemberException ? $"load plugin {name} ({dll}): {e.Message}" : $"load plugin {name} ({dll}): {e.GetBaseException().Message}";
        }
    }

    // Everything the host reads from a plugin besides Configure, read once here: host-owned copies, checked.
    private static LoadedPlugin Copy(IRoutingPlugin instance, string dll, string name)
    {
        string description = Read("Description", () => instance.Description) ?? "";
        var template = Read("Template", () => instance.Template) ?? throw new PluginMemberException("its Template is null");
        if (template.FileName is null || template.Text is null)
            throw new PluginMemberException("its Template has no file name or text");
        var maps = Read("Maps", () => instance.Maps?.ToList()) ?? throw new PluginMemberException("its Maps is null");
        if (maps.Any(m => m is null || m.Key is null || m.Value is null))
            throw new PluginMemberException("its Maps holds a null schema or field list");
        maps = maps.Select(m => m with { Key = m.Key.ToList(), Value = m.Value.ToList() }).ToList();
        var commands = instance is IRuntimeCommands offers
            ? Read("Commands", () => offers.Commands?.ToList()) ?? throw new PluginMemberException("its Commands is null")
            : [];
        if (commands.Any(c => c is null || c.Arguments is null))
            throw new PluginMemberException("its Commands holds a null command or argument list");
        var problems = maps.SelectMany(StageMap.Validate).Concat(StageMap.ValidateSet(maps)).ToList();
        if (problems.Count > 0)
            throw new PluginMemberException(string.Join("; ", problems));
        return new LoadedPlugin(instance, dll, name, description, template with { }, maps,
            commands.Select(c => c with { Arguments = c.Arguments.ToList() }).ToList());
    }

    private static T Read<T>(string member, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is not OutOfMemoryException and not PluginMemberException)
        {
            throw new PluginMemberException($"reading its {member} threw {e.GetType().Name}: {e.Message}");
        }
    }

    // A plugin member that threw or gave nothing usable: the plugin does not load.
    private sealed class PluginMemberException(string message) : HostException(message);

    /// <summary>The version of PluginHost.Contract an assembly was built against, read without loading it.</summary>
    internal static Version? ReferencedContractVersion(string dll)
    {
        using var stream = File.OpenRead(dll);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();
        foreach (var handle in md.AssemblyReferences)
        {
            var reference = md.GetAssemblyReference(handle);
            if (md.GetString(reference.Name) == "PluginHost.Contract")
                return reference.Version;
        }
        return null;
    }

    public void Dispose()
    {
        _plugins.Clear();
        foreach (var folder in _folders)
        {
            folder.Plugin = null;
            folder.Loader?.Dispose();
        }
        _folders.Clear();
    }
}

/// <summary>The rule for accepting a plugin: same contract major version as the host.</summary>
internal static class ContractCheck
{
    public static string? Problem(string plugin, Version pluginBuiltAgainst, Version hostProvides) =>
        pluginBuiltAgainst.Major == hostProvides.Major
            ? null
            : $"load plugin {plugin}: built for plugin contract {pluginBuiltAgainst.Major}.x, but this host provides contract {hostProvides.Major}.x (rebuild the plugin against PluginHost.Contract {hostProvides.Major}.x)";
}
