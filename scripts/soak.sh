#!/usr/bin/env bash
# Soak run of the agent under random faults; bounded in time, not in CI, not part of `npm test`:
#
#   scripts/soak.sh [--minutes 30] [--seed N] [--base 28400] [--recovery-timeout 120]   (or SOAK_MINUTES, SOAK_SEED)
#
# Builds, brings up a PRIVATE dev env with scripts/dev-env.sh (its own dockerd, socket, data and exec roots,
# containerd and images, and an etcd on 23890: SOAK_DEV_DIR, default /tmp/meshlet-soak, and SOAK_DEV_ETCD_PORT),
# runs dist/scripts/soak.js in it and takes that env down at the end. The soak restarts this dockerd, so it must
# never be the shared one (/tmp/meshlet-dev) that other tests use. Images and each run's agent log
# (SOAK_DEV_DIR/runs/) stay for the next run; SOAK_CLEAN=1 removes the folder. Needs root (dockerd).
# Prints JSON lines on stdout, progress on stderr; exits 1 when an invariant did not hold. Ctrl-C ends the
# current fault, then checks and cleans up; a second Ctrl-C aborts.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV_DIR=${SOAK_DEV_DIR:-/tmp/meshlet-soak}
ETCD_PORT=${SOAK_DEV_ETCD_PORT:-23890}
[ "${DEV_DIR%/}" != /tmp/meshlet-dev ] || { echo "soak: SOAK_DEV_DIR must not be the shared dev env /tmp/meshlet-dev" >&2; exit 2; }

dev() { MESHLET_DEV_DIR=$DEV_DIR MESHLET_DEV_ETCD_PORT=$ETCD_PORT bash scripts/dev-env.sh "$@"; }
down() {
  dev down >&2 || true
  [ -z "${SOAK_CLEAN:-}" ] || rm -rf "$DEV_DIR"
}

npm run build --silent >&2
trap down EXIT
dev up >&2
eval "$(dev env)"
export SOAK_DEV_DIR=$DEV_DIR SOAK_DEV_ETCD_PORT=$ETCD_PORT
# Its own session: a Ctrl-C reaches the soak alone (forwarded below), not the agent and etcd it runs, which it
# stops itself in order.
setsid node dist/scripts/soak.js "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' INT TERM
rc=0
while :; do
  wait "$pid" && rc=0 || rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
exit "$rc"
