// The host drives Linux kernel facilities (BPF, tcx, network namespaces) and nothing else.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
