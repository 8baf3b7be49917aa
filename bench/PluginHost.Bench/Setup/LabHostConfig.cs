using PluginHost.Lab;

namespace PluginHost.Bench.Setup;

/// <summary>What the scenarios that run a host on the router lab share: its plugins directory and its config.</summary>
public static class LabHostConfig
{
    /// <summary>Copy a built plugin folder (NAME/) into <paramref name="pluginsDirectory"/>.</summary>
    public static void CopyPlugin(string source, string pluginsDirectory)
    {
        string target = Path.Combine(pluginsDirectory, Path.GetFileName(source));
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
    }

    /// <summary>A config with one pipeline on the router's lan0 ingress; <paramref name="stagesYaml"/> goes under <c>stages:</c>.</summary>
    public static string Text(string plugins, string bpfRoot, string work, string pipeline, RouterLab lab, string stagesYaml) => $"""
        pluginsDirectory: {plugins}
        bpfRoot: {bpfRoot}
        runtimeDirectory: {Path.Combine(work, "run")}
        cacheDirectory: {Path.Combine(work, "cache")}
        pipelines:
          - name: {pipeline}
            namespace: {lab.Router.Name}
            interface: {RouterLab.RouterLan}
            direction: ingress
            stages:

        """ + stagesYaml;
}
