#!/usr/bin/env bash
# Runs every benchmark; each prints one JSON line per figure. Expects `npm run build` first (npm run bench does it).
# BENCH_ONLY=WORD runs only the benchmarks whose file name contains WORD (e.g. BENCH_ONLY=sidecar).
# A failing benchmark is named at the end and makes the run exit 1; the others still run.
# The sidecar benchmarks (sidecar-*.bench) need the real Envoy (MESHLET_TEST_ENVOY from `scripts/dev-env.sh env`,
# or `envoy` on PATH) and use Debian's wrk for maximum throughput: installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/bench/ensure-wrk.sh || echo "run.sh: no wrk; the sidecar max-throughput figures are skipped" >&2
failed=()
for b in dist/scripts/bench/*.bench.js; do
  case "$(basename "$b")" in *"${BENCH_ONLY:-}"*) ;; *) continue ;; esac
  rc=0
  node "$b" || rc=$?
  [ "$rc" = 0 ] || failed+=("$(basename "$b" .js) (exit $rc)")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
