#!/usr/bin/env bash
# Installs Debian's wrk (the sidecar benchmarks' maximum-throughput load generator) when it is missing.
# Idempotent: does nothing when wrk is on PATH. Needs root for apt-get; says so otherwise.
set -euo pipefail
command -v wrk >/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure-wrk: wrk is missing and installing it needs root (apt-get install wrk)" >&2
  exit 1
fi
log=$(mktemp)
if ! { apt-get -o DPkg::Lock::Timeout=300 install -y -q wrk ||
       { apt-get -o DPkg::Lock::Timeout=300 update -q && apt-get -o DPkg::Lock::Timeout=300 install -y -q wrk; }; } >"$log" 2>&1; then
  echo "ensure-wrk: apt-get install wrk failed:" >&2
  tail -20 "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
echo "ensure-wrk: installed $(wrk --version 2>&1 | head -1)" >&2
