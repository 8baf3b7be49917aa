// The harness drives BPF, tcx and network namespaces through the engine: Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
