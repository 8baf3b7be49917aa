using System.Reflection;

namespace PluginHost.Contract;

/// <summary>A Scriban template of a stage's C fragment.</summary>
/// <param name="FileName">Name used in compiler and verifier messages (e.g. <c>source_policy.c.sbn</c>).</param>
/// <param name="Text">The template text.</param>
public sealed record StageTemplate(string FileName, string Text)
{
    /// <summary>Read a template embedded in the plugin assembly (LogicalName = file name).</summary>
    public static StageTemplate FromResource(Assembly assembly, string fileName)
    {
        using var stream = assembly.GetManifestResourceStream(fileName)
            ?? throw new InvalidOperationException(
                $"read template '{fileName}': no such resource in {assembly.GetName().Name} (embed it with LogicalName=\"{fileName}\")");
        using var reader = new StreamReader(stream);
        return new StageTemplate(fileName, reader.ReadToEnd());
    }
}
