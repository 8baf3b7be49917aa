namespace PluginHost.TestSupport;

/// <summary>Host configurations for tests and the bench: private directories, pipelines written out field by field.</summary>
public static class HostYaml
{
    /// <summary>A whole configuration; <paramref name="pipelines"/> are <see cref="Pipeline"/> texts.</summary>
    public static string Config(string pluginsDirectory, string bpfRoot, string runtimeDirectory, string cacheDirectory, params string[] pipelines) =>
        $"pluginsDirectory: {pluginsDirectory}\nbpfRoot: {bpfRoot}\nruntimeDirectory: {runtimeDirectory}\ncacheDirectory: {cacheDirectory}\n" +
        "pipelines:\n" + string.Concat(pipelines);

    /// <summary>One pipeline; <paramref name="stages"/> are stage list items indented 6 spaces (under <c>stages:</c>).</summary>
    public static string Pipeline(string name, string? ns, string iface, string stages, string direction = "ingress") =>
        $"  - name: {name}\n" + (ns is null ? "" : $"    namespace: {ns}\n") +
        $"    interface: {iface}\n    direction: {direction}\n    stages:\n" + stages.TrimEnd('\n') + "\n";

    /// <summary>Copy a built plugin folder (NAME/) into <paramref name="pluginsDirectory"/>.</summary>
    public static void CopyPlugin(string source, string pluginsDirectory)
    {
        string target = Path.Combine(pluginsDirectory, Path.GetFileName(source));
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
    }
}
