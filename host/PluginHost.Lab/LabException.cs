namespace PluginHost.Lab;

/// <summary>Building or probing the namespace lab failed (an <c>ip</c> command, a sysctl, an interface that stays down).</summary>
internal sealed class LabException(string message, Exception? inner = null) : HostException(message, inner);
