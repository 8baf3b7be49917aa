// The engine it drives runs on Linux kernel facilities (BPF) only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
