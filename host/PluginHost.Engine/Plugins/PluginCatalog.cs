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
    private readonly List<PluginLoader> _loaders = [];
    private readonly Dictionary<string, LoadedPlugin> _plugins = new(StringComparer.Ordinal);

    private PluginCatalog(string directory) => Directory = directory;

    public string Directory { get; }

    public IReadOnlyDictionary<string, LoadedPlugin> Plugins => _plugins;

    /// <summary>Problems found while loading; a plugin with a problem is left out.</summary>
    public List<string> Errors { get; } = [];

    public static PluginCatalog Load(string directory)
    {
        var catalog = new PluginCatalog(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            catalog.Errors.Add($"load plugins from {directory}: no such directory");
            return catalog;
        }
        foreach (var folder in System.IO.Directory.GetDirectories(directory).Order(StringComparer.Ordinal))
        {
            string dll = Path.Combine(folder, Path.GetFileName(folder) + ".dll");
            if (File.Exists(dll))
                catalog.LoadOne(dll);
        }
        return catalog;
    }

    private void LoadOne(string dll)
    {
        string file = Path.GetFileName(dll);
        Version? referenced;
        try
        {
            referenced = ReferencedContractVersion(dll);
        }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException or IOException)
        {
            Errors.Add($"load plugin {dll}: not a .NET assembly ({e.Message})");
            return;
        }
        if (referenced is null)
        {
            Errors.Add($"load plugin {dll}: it does not reference PluginHost.Contract");
            return;
        }
        if (ContractCheck.Problem(file, referenced, typeof(IRoutingPlugin).Assembly.GetName().Version!) is { } problem)
        {
            Errors.Add(problem);
            return;
        }

        // In memory: a DLL overwritten in place later must not change code that is already loaded.
        var loader = PluginLoader.CreateFromAssemblyFile(dll, isUnloadable: true, sharedTypes: [typeof(IRoutingPlugin)],
            configure: c => c.LoadInMemory = true);
        _loaders.Add(loader);
        try
        {
            var types = loader.LoadDefaultAssembly().GetTypes()
                .Where(t => typeof(IRoutingPlugin).IsAssignableFrom(t) && !t.IsAbstract && t.GetConstructor(Type.EmptyTypes) is not null)
                .ToList();
            if (types.Count == 0)
                Errors.Add($"load plugin {dll}: no public class implements IRoutingPlugin with a parameterless constructor");
            foreach (var type in types)
            {
                var instance = (IRoutingPlugin)Activator.CreateInstance(type)!;
                var schemaProblems = instance.Maps.SelectMany(StageMap.Validate).ToList();
                if (!StageMap.Identifier().IsMatch(instance.Name) || instance.Name.Length > 32)
                    schemaProblems.Add($"plugin name '{instance.Name}' must be a C identifier of at most 32 characters (it names programs)");
                if (schemaProblems.Count > 0)
                    Errors.AddRange(schemaProblems.Select(p => $"load plugin {instance.Name} ({dll}): {p}"));
                else if (_plugins.TryGetValue(instance.Name, out var other))
                    Errors.Add($"load plugin {dll}: the name '{instance.Name}' is already taken by {other.AssemblyPath}");
                else
                    _plugins[instance.Name] = new LoadedPlugin(instance, dll);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Errors.Add($"load plugin {dll}: {e.GetBaseException().Message}");
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
        foreach (var loader in _loaders)
            loader.Dispose();
        _loaders.Clear();
    }
}

/// <summary>The rule for accepting a plugin: same contract major version as the host.</summary>
public static class ContractCheck
{
    public static string? Problem(string plugin, Version pluginBuiltAgainst, Version hostProvides) =>
        pluginBuiltAgainst.Major == hostProvides.Major
            ? null
            : $"load plugin {plugin}: built for plugin contract {pluginBuiltAgainst.Major}.x, but this host provides contract {hostProvides.Major}.x (rebuild the plugin against PluginHost.Contract {hostProvides.Major}.x)";
}
