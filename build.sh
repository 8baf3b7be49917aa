#!/usr/bin/env bash
# PluginHost: one entry point for people and CI.
#   ./build.sh demo [demo options]   install what is missing, build, run the namespace demo
#   ./build.sh test [dotnet test options]   install, build, run every test (unit, kernel, lab)
#   ./build.sh build                 install what is missing, build only
#   ./build.sh pack                  build the SDK packages (contract, testing, template) into artifacts/packages/
# Needs Linux >= 6.6 (tcx), root, and the .NET 10 SDK (pack: the SDK only).
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "build.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || [ "${1:-}" = pack ] || die "needs root (network namespaces, BPF): run it as root or with sudo"
command -v dotnet >/dev/null || die "needs the .NET 10 SDK (dotnet) on PATH"

install_dependencies() {
  local missing=()
  command -v clang-19 >/dev/null || missing+=(clang-19)
  [ -f /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
  ls /usr/lib/*/libbpf.so.1 >/dev/null 2>&1 || missing+=(libbpf1)
  command -v bpftool >/dev/null || missing+=(bpftool)
  command -v ip >/dev/null || missing+=(iproute2)
  # nft: the benchmark's classifier section compares FiveTuplePolicy with an nftables chain.
  command -v nft >/dev/null || missing+=(nftables)
  # clang runs under setsid, setpriv --pdeathsig and prlimit (Essential on Debian, so normally present).
  { command -v setsid && command -v setpriv && command -v prlimit; } >/dev/null || missing+=(util-linux)
  [ -f "/usr/include/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)/asm/types.h" ] || missing+=(linux-libc-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "build.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # Pins live in the BPF filesystem.
  if ! mount | grep -q " /sys/fs/bpf type bpf"; then
    mount -t bpf bpf /sys/fs/bpf || die "mount the BPF filesystem: mount -t bpf bpf /sys/fs/bpf"
  fi
  local kernel; kernel=$(uname -r | cut -d. -f1,2)
  if [ "$(printf '%s\n6.6\n' "$kernel" | sort -V | head -1)" != "6.6" ]; then
    die "needs Linux >= 6.6 for tcx links (this is $(uname -r))"
  fi
}

build() {
  dotnet build PluginHost.sln -c Release -nologo -v quiet -clp:ErrorsOnly
}

# The packages a third party builds plugins with, versioned with the contract; the test that proves them packs its own copy.
pack() {
  local out=artifacts/packages
  rm -rf "$out"
  for project in host/PluginHost.Contract host/PluginHost.Testing templates/PluginHost.Templates; do
    dotnet pack "$project" -c Release -nologo -v quiet -clp:ErrorsOnly -o "$out"
  done
  ls "$out"
}

# dotnet test's own summary, turned into the one line CI reads: "N passed, N failed, N skipped".
run_tests() {
  local log rc=0
  log=$(mktemp)
  dotnet test PluginHost.sln -c Release --no-build -nologo --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log" || rc=$?
  local passed failed skipped
  count() { awk -v key="$1" '$1 == key":" && $2 ~ /^[0-9]+$/ {s += $2} END {print s + 0}' "$log"; }
  passed=$(count Passed); failed=$(count Failed); skipped=$(count Skipped)
  rm -f "$log"
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # the run itself broke
  echo "$passed passed, $failed failed, $skipped skipped"
  return "$rc"
}

case "${1:-}" in
  demo) shift; install_dependencies; build; exec artifacts/pluginhost/pluginhost demo "$@" ;;
  test) shift; install_dependencies; build; run_tests "$@" ;;
  build) install_dependencies; build ;;
  pack) pack ;;
  *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
