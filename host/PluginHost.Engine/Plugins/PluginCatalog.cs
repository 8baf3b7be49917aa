using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using McMaster.NETCore.Plugins;
using PluginHost.Compose;
using PluginHost.Contract;

namespace PluginHost.Plugins;

/// <summary>A plugin instance with the loader that owns its assembly.</summary>
public sealed record LoadedPlugin(IRoutingPlugin Instance, string AssemblyPath);

/// <summary>
/// The plugins found in a directory (one folder per plugin: <c>NAME/NAME.dll</c>), each in its own
/// collectible load context that shares only the contract with the host. Dispose unloads them:
/// copy what you need out of the plugins first.
/// </summary>
public sealed class PluginCatalog : IDisposable
{
    // One plugin folder as loaded: what its files were (signature), its load context, what it gave.
    private sealed class Folder(string path, string signature)
    {
        public string Path { get; } = path;
        public string Signature { get; } = signature;
        public PluginLoader? Loader { get; set; }
        public List<LoadedPlugin> Plugins { get; } = [];
        public List<string> Errors { get; } = [];
    }

    private readonly List<Folder> _folders = [];
    private readonly Dictionary<string, LoadedPlugin> _plugins = new(StringComparer.Ordinal);

    private PluginCatalog(string directory) => Directory = directory;

    public string Directory { get; }

    public IReadOnlyDictionary<string, LoadedPlugin> Plugins => _plugins;

    /// <summary>Problems found while loading; a plugin with a problem is left out.</summary>
    public List<string> Errors { get; } = [];

    /// <summary>
    /// Load every plugin folder of <paramref name="directory"/>. Folders whose files are unchanged since
    /// <paramref name="reuse"/> loaded them are taken over from it, loaded and JIT-compiled already (and no longer
    /// unloaded with it): changing one plugin does not reload the others.
    /// </summary>
    public static PluginCatalog Load(string directory, PluginCatalog? reuse = null)
    {
        var catalog = new PluginCatalog(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            catalog.Errors.Add($"load plugins from {directory}: no such directory");
            return catalog;
        }
        foreach (var path in System.IO.Directory.GetDirectories(directory).Order(StringComparer.Ordinal))
        {
            string dll = System.IO.Path.Combine(path, System.IO.Path.GetFileName(path) + ".dll");
            if (!File.Exists(dll))
                continue;
            string signature = Signature(path);
            var folder = reuse?._folders.FirstOrDefault(f => f.Path == path && f.Signature == signature);
            if (folder is not null)
                reuse!.Release(folder);
            else
            {
                folder = new Folder(path, signature);
                LoadOne(dll, folder);
            }
            catalog.Add(folder);
        }
        return catalog;
    }

    // A folder's files: DLLs by content (a copy that keeps the old time and size still counts as a change), others by size and time.
    internal static string Signature(string folder) =>
        string.Join('\n', new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories)
            .Select(f => f.Extension == ".dll"
                ? $"{f.FullName}|{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f.FullName)))}"
                : $"{f.FullName}|{f.Length}|{f.LastWriteTimeUtc.Ticks}")
            .Order(StringComparer.Ordinal));

    private void Add(Folder folder)
    {
        _folders.Add(folder);
        Errors.AddRange(folder.Errors);
        foreach (var plugin in folder.Plugins)
        {
            if (_plugins.TryGetValue(plugin.Instance.Name, out var other))
                Errors.Add($"load plugin {plugin.AssemblyPath}: the name '{plugin.Instance.Name}' is already taken by {other.AssemblyPath}");
            else
                _plugins[plugin.Instance.Name] = plugin;
        }
    }

    // Hand a folder over to another catalog: this one no longer lists it or unloads it.
    private void Release(Folder folder)
    {
        _folders.Remove(folder);
        foreach (var plugin in folder.Plugins)
            if (_plugins.TryGetValue(plugin.Instance.Name, out var listed) && ReferenceEquals(listed, plugin))
                _plugins.Remove(plugin.Instance.Name);
    }

    private static void LoadOne(string dll, Folder folder)
    {
        string file = Path.GetFileName(dll);
        Version? referenced;
        try
        {
            referenced = ReferencedContractVersion(dll);
        }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException or IOException)
        {
            folder.Errors.Add($"load plugin {dll}: not a .NET assembly ({e.Message})");
            return;
        }
        if (referenced is null)
        {
            folder.Errors.Add($"load plugin {dll}: it does not reference PluginHost.Contract");
            return;
        }
        if (ContractCheck.Problem(file, referenced, typeof(IRoutingPlugin).Assembly.GetName().Version!) is { } problem)
        {
            folder.Errors.Add(problem);
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
                folder.Errors.Add($"load plugin {dll}: no class implements IRoutingPlugin with a public parameterless constructor");
            foreach (var type in types)
            {
                var instance = (IRoutingPlugin)Activator.CreateInstance(type)!;
                var schemaProblems = instance.Maps.SelectMany(StageMap.Validate).ToList();
                if (!StageMap.Identifier().IsMatch(instance.Name) || instance.Name.Length > 32)
                    schemaProblems.Add($"plugin name '{instance.Name}' must be a C identifier of at most 32 characters (it names programs)");
                if (schemaProblems.Count > 0)
                    folder.Errors.AddRange(schemaProblems.Select(p => $"load plugin {instance.Name} ({dll}): {p}"));
                else
                    folder.Plugins.Add(new LoadedPlugin(instance, dll));
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            folder.Errors.Add($"load plugin {dll}: {e.GetBaseException().Message}");
        }
    }

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
            folder.Plugins.Clear();
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
