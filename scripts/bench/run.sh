#!/usr/bin/env bash
# Runs every benchmark; each prints one JSON line per figure. Expects `npm run build` first (npm run bench does it).
# The sidecar benchmarks (sidecar-*.bench) need the real Envoy (MESHLET_TEST_ENVOY from `scripts/dev-env.sh env`,
# or `envoy` on PATH) and use Debian's wrk for maximum throughput: installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/bench/ensure-wrk.sh || echo "run.sh: no wrk; the sidecar max-throughput figures are skipped" >&2
for b in dist/scripts/bench/*.bench.js; do
  node "$b"
done
