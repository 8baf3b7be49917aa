using System.Text.Json;
using PluginHost.Observe;

namespace PluginHost.Plugins;

/// <summary>A plugin build: its name, DLL and the DLL's SHA-256 (a new build is a new identity).</summary>
public sealed record PluginBuild(string Plugin, string Dll, string Sha256);

/// <summary>A plugin call the host died in, and when the next host found out.</summary>
public sealed record QuarantinedPlugin(string Plugin, string Dll, string Sha256, string Call, DateTimeOffset Since);

/// <summary>A call into plugin code did not return in time; it was abandoned.</summary>
internal sealed class PluginTimeoutException(string message) : HostException(message);

/// <summary>
/// Every call the host makes into plugin code during an apply goes through here. It runs on a thread of its own (in
/// the pipeline's network namespace) and is abandoned when it takes longer than the configured limit, so a looping
/// plugin cannot stall the single writer. While it runs, a record of it sits in <c>RUNTIME/plugin-calls/</c>: a host
/// that dies inside a plugin call (Environment.Exit, a stack overflow, an exception on the plugin's own thread)
/// leaves the record behind, and the next host quarantines that build instead of calling it again (a crash loop).
/// </summary>
public sealed class PluginCalls(string runtimeDirectory, TimeSpan timeout, bool record = true)
{

    /// <summary>Where in-flight records go; none when not recording (validate: a crash there costs no datapath).</summary>
    private string? CallsDirectory => record ? Path.Combine(runtimeDirectory, "plugin-calls") : null;

    public string QuarantineFile => QuarantineFileIn(runtimeDirectory);

    public static string QuarantineFileIn(string runtimeDirectory) => Path.Combine(runtimeDirectory, "quarantine.json");

    /// <summary>The build of the plugin whose DLL is <paramref name="dll"/> (hashed once per file version).</summary>
    public static PluginBuild Build(string plugin, string dll) =>
        new(plugin, dll, File.Exists(dll) ? PluginTrust.Sha256(dll) : "");

    /// <summary>Run <paramref name="call"/> (named <paramref name="what"/>) of <paramref name="build"/> with the time limit.</summary>
    public T Run<T>(PluginBuild build, string what, string? ns, Func<T> call)
    {
        var record = CallsDirectory is null ? null : InFlight.Begin(CallsDirectory, Serialize(build, what));
        bool abandoned = false;
        try
        {
            if (Net.NamespaceThreads.TryRun(ns, call, timeout, out T result))
                return result;
            abandoned = true;
            throw new PluginTimeoutException($"call plugin {build.Plugin} {what}: no answer within {timeout.TotalSeconds:0.#} s; abandoned " +
                "(its thread keeps running until the host restarts; pluginCallTimeout sets the limit)");
        }
        finally
        {
            // A call that answered (a result or an exception) is over. An abandoned one's record stays: if it never
            // returns and the host is stopped, the next host quarantines the build.
            record?.End(keep: abandoned);
        }
    }

    /// <summary>
    /// The in-flight record of a call: one file per runtime directory and process, kept open and written in place (a call
    /// costs a write and a truncate, not a file made and deleted). A record that must stay (an abandoned call) keeps
    /// its file; the next call opens another. A call while another is in flight gets a file of its own.
    /// </summary>
    private sealed class InFlight
    {
        private static readonly Dictionary<string, InFlight> Idle = []; // directory → its open record file, not in use
        private static readonly Lock Gate = new();

        private readonly string _directory;
        private readonly FileStream _file;

        private InFlight(string directory)
        {
            _directory = directory;
            Directory.CreateDirectory(directory);
            Path = System.IO.Path.Combine(directory, $"{Guid.NewGuid():N}.json");
            _file = new FileStream(Path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite | FileShare.Delete, BufferSize = 0,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }

        public string Path { get; }

        // Paths of record files this process holds open now (idle or in use): not a dead host's.
        private static readonly HashSet<string> Held = [];

        public static InFlight Begin(string directory, byte[] record)
        {
            InFlight? slot;
            lock (Gate)
                if (Idle.Remove(directory, out slot) is false)
                    slot = null;
            if (slot is not null && !File.Exists(slot.Path))
            {
                // Removed from under this process (the runtime directory cleared): a record written there would be lost.
                slot._file.Dispose();
                lock (Gate)
                    Held.Remove(slot.Path);
                slot = null;
            }
            slot ??= new InFlight(directory);
            lock (Gate)
                Held.Add(slot.Path);
            System.IO.RandomAccess.Write(slot._file.SafeFileHandle, record, 0);
            return slot;
        }

        public void End(bool keep)
        {
            if (keep)
            {
                _file.Dispose(); // the record stays, closed
                lock (Gate)
                    Held.Remove(Path);
                return;
            }
            _file.SetLength(0);
            lock (Gate)
                if (!Idle.TryAdd(_directory, this))
                {
                    Held.Remove(Path); // another call's file is kept instead
                    _file.Dispose();
                    File.Delete(Path);
                }
        }

        public static bool IsHeld(string path)
        {
            lock (Gate)
                return Held.Contains(path);
        }
    }

    private static byte[] Serialize(PluginBuild build, string what) =>
        JsonSerializer.SerializeToUtf8Bytes(new QuarantinedPlugin(build.Plugin, build.Dll, build.Sha256, what, default), HostJson.Options);

    /// <summary>
    /// The process is dying of an exception thrown in <paramref name="build"/>'s code outside a host call (on a thread of
    /// its own): leave the same record a call would, so the next host quarantines the build instead of loading it again.
    /// </summary>
    public void RecordCrash(PluginBuild build, string what)
    {
        // The process dies of this plugin's own thread: a call in flight meanwhile (another stage's Configure) did not
        // kill it, and its record must not quarantine that plugin.
        string calls = Path.Combine(runtimeDirectory, "plugin-calls");
        if (Directory.Exists(calls))
            foreach (var file in Directory.GetFiles(calls, "*.json"))
            {
                if (InFlight.IsHeld(file))
                    File.WriteAllBytes(file, []); // kept open by this process: emptied in place
                else
                    File.Delete(file);
            }
        WriteRecord(calls, build, what);
    }

    // One record: what the host is inside of (or died of), found by the next host's QuarantineLeftovers.
    private static string WriteRecord(string directory, PluginBuild build, string what)
    {
        Directory.CreateDirectory(directory);
        string record = Path.Combine(directory, $"{Guid.NewGuid():N}.json");
        File.WriteAllText(record, JsonSerializer.Serialize(new QuarantinedPlugin(build.Plugin, build.Dll, build.Sha256, what, default), HostJson.Options));
        return record;
    }

    /// <summary>
    /// At start: calls a previous host died in (records left behind) quarantine their builds. Returns the builds
    /// quarantined now.
    /// </summary>
    public IReadOnlyList<QuarantinedPlugin> QuarantineLeftovers(DateTimeOffset now)
    {
        string calls = Path.Combine(runtimeDirectory, "plugin-calls");
        if (!Directory.Exists(calls))
            return [];
        var found = new List<QuarantinedPlugin>();
        foreach (var file in Directory.GetFiles(calls, "*.json"))
        {
            if (InFlight.IsHeld(file))
                continue; // this process's own, open (empty, or a call in flight now)
            try
            {
                if (JsonSerializer.Deserialize<QuarantinedPlugin>(File.ReadAllText(file), HostJson.Options) is { } q)
                    found.Add(q with { Since = now });
            }
            catch (JsonException)
            {
                // A record cut short by the death itself: nothing to quarantine by.
            }
            File.Delete(file);
        }
        if (found.Count > 0)
            SaveQuarantine(Quarantined().Concat(found).DistinctBy(q => (q.Plugin, q.Sha256)).ToList());
        return found;
    }

    /// <summary>Builds refused because a host died calling them.</summary>
    public IReadOnlyList<QuarantinedPlugin> Quarantined() => Read(QuarantineFile);

    public static IReadOnlyList<QuarantinedPlugin> Read(string quarantineFile)
    {
        try
        {
            return File.Exists(quarantineFile)
                ? JsonSerializer.Deserialize<List<QuarantinedPlugin>>(File.ReadAllText(quarantineFile), HostJson.Options) ?? []
                : [];
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            return []; // an unreadable quarantine file quarantines nothing (and is not the apply's business)
        }
    }

    private void SaveQuarantine(IReadOnlyList<QuarantinedPlugin> all)
    {
        string tmp = QuarantineFile + ".tmp";
        using (var stream = new FileStream(tmp, new FileStreamOptions
               { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
            JsonSerializer.Serialize(stream, all, HostJson.Options);
        File.Move(tmp, QuarantineFile, overwrite: true);
    }
}
