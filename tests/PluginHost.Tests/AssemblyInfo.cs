// Kernel, lab and most unit tests drive Linux facilities; the suite runs on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
