#!/usr/bin/env bash
# The project's test command (`npm test`, `.ci/run`): build, bring up etcd + dockerd + test
# images with dev-env.sh, run every suite; takes services down again only if it started them.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm ci rewrites node_modules/.package-lock.json, so it is newer than package-lock.json after.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci
fi
npm run build

# dev-env.sh up appends the services it started here; only those are stopped on exit, so a
# developer's running environment is left alone.
started=$(mktemp)
cleanup() {
  local services
  services=$(sort -u "$started")
  rm -f "$started"
  # Quiet: CI reads the closing lines of node's test summary.
  # shellcheck disable=SC2086
  [ -z "$services" ] || bash scripts/dev-env.sh down $services >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
MESHLET_DEV_STARTED_FILE=$started bash scripts/dev-env.sh up
eval "$(bash scripts/dev-env.sh env)"

# Explicit file lists: node 20 has no --test globs, and a directory argument would also run
# compiled helpers. tsc never deletes outputs, so a compiled test whose .ts is gone is skipped.
files=()
for suite in unit integration envoy e2e; do
  [ -d "dist/test/$suite" ] || continue
  while IFS= read -r f; do
    src=test/${f#dist/test/}
    [ -f "${src%.js}.ts" ] && files+=("$f")
  done < <(find "dist/test/$suite" -name '*.test.js' | sort)
done
[ ${#files[@]} -gt 0 ] || { echo "test.sh: no compiled tests under dist/test/{unit,integration,envoy,e2e}" >&2; exit 1; }

set +e
node --test --test-concurrency=1 "${files[@]}"
code=$?
set -e
exit $code
