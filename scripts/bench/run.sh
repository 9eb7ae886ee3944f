#!/usr/bin/env bash
# Runs every benchmark; each prints one JSON line per figure. Expects `npm run build` first (npm run bench does it).
set -euo pipefail
cd "$(dirname "$0")/../.."
for b in dist/scripts/bench/*.bench.js; do
  node "$b"
done
