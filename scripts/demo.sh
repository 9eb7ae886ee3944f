#!/usr/bin/env bash
# meshlet's main job on this machine: start etcd and dockerd if missing (scripts/dev-env.sh), push the
# example mesh (fixtures/local/mesh.yaml) with `meshlet apply`, run the agent for node "local" with real
# Envoy sidecars, show the compose file it wrote and what registered, then send requests through web's
# sidecar to api and print how they split over v1 and v2. `scripts/demo.sh stop` stops the agent (containers keep
# running, as under systemd) and `scripts/demo.sh clean` also removes the demo's containers.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${MESHLET_DEMO_DIR:-/tmp/meshlet-demo}
STATE_DIR=$DEMO_DIR/state
PID_FILE=$DEMO_DIR/agent.pid
NODE=local
PREFIX=/meshlet-demo

meshlet() { node dist/agent/bin.js "$@"; }

stop_agent() {
  if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill -TERM "$(cat "$PID_FILE")"
    for _ in $(seq 50); do kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break; sleep 0.1; done
    echo "agent stopped (containers keep running)"
  fi
  rm -f "$PID_FILE"
}

case "${1:-run}" in
  stop) stop_agent; exit 0 ;;
  clean)
    stop_agent
    eval "$(bash scripts/dev-env.sh env)"
    [ -f "$STATE_DIR/compose/docker-compose.yml" ] && docker-compose -p "meshlet-$NODE" -f "$STATE_DIR/compose/docker-compose.yml" down -t 1 || true
    rm -rf "$DEMO_DIR"
    exit 0 ;;
  run) ;;
  *) echo "usage: scripts/demo.sh [run|stop|clean]" >&2; exit 2 ;;
esac

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci; fi
npm run build --silent
bash scripts/dev-env.sh up
eval "$(bash scripts/dev-env.sh env)"
export MESHLET_ETCD=$MESHLET_TEST_ETCD MESHLET_PREFIX=$PREFIX
mkdir -p "$DEMO_DIR"

echo "== meshlet apply -f fixtures/local/mesh.yaml"
meshlet apply -f fixtures/local/mesh.yaml

stop_agent
echo "== meshlet agent --node $NODE (log: $DEMO_DIR/agent.log)"
nohup node dist/agent/bin.js agent --node "$NODE" --state-dir "$STATE_DIR" --advertise-address 127.0.0.1 \
  --sidecar-image "$MESHLET_TEST_SIDECAR_IMAGE" --xds-port 15010 >"$DEMO_DIR/agent.log" 2>&1 &
echo $! >"$PID_FILE"

# Wait until the agent has applied the desired state and all three apps (web v1, api v1, api v2) have registered.
for _ in $(seq 120); do
  if [ "$(meshlet get instances -o json 2>/dev/null | grep -c '"version"')" -ge 3 ]; then break; fi
  sleep 0.5
done

echo
echo "== compose project: $STATE_DIR/compose/docker-compose.yml"
sed -n '1,40p' "$STATE_DIR/compose/docker-compose.yml"
echo "   ... (envoy bootstraps in $STATE_DIR/envoy/, state in $STATE_DIR/state.json)"
echo
echo "== containers"
docker ps --filter "label=com.docker.compose.project=meshlet-$NODE" --format 'table {{.Names}}\t{{.Status}}'
echo
echo "== meshlet status"
meshlet status
echo
echo "== meshlet get instances"
meshlet get instances
echo
# web reaches api through its own Envoy sidecar on 127.0.0.1:18180 (fixtures/local/mesh.yaml); each api
# version serves a page naming itself ("api v1" / "api v2"), so the answers show the route's 90/10 split.
REQUESTS=20
echo "== $REQUESTS requests through web's sidecar (127.0.0.1:18180) to api"
for _ in $(seq 30); do curl -fsS -m 2 -o /dev/null http://127.0.0.1:18180/ 2>/dev/null && break; sleep 0.5; done
v1=0 v2=0 failed=0
for _ in $(seq "$REQUESTS"); do
  case "$(curl -fsS -m 2 http://127.0.0.1:18180/ 2>/dev/null)" in
    "api v1") v1=$((v1 + 1)) ;;
    "api v2") v2=$((v2 + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
echo "api v1: $v1 of $REQUESTS"
echo "api v2: $v2 of $REQUESTS"
[ "$failed" -eq 0 ] || echo "failed: $failed of $REQUESTS (see meshlet status and $DEMO_DIR/agent.log)"
echo "(the route sends 90% to v1 and 10% to v2)"
echo
echo "The agent keeps running (pid $(cat "$PID_FILE")). Try a canary shift:"
echo "  MESHLET_ETCD=$MESHLET_ETCD MESHLET_PREFIX=$PREFIX node dist/agent/bin.js route api --weights v1=50,v2=50"
echo "It rewrites the VirtualService api in etcd; the agent pushes the new weights to web's Envoy over xDS"
echo "(no container restarts), and the same requests then split about half and half:"
echo "  for i in \$(seq 20); do curl -s http://127.0.0.1:18180/; done | sort | uniq -c"
echo "Stop it with: scripts/demo.sh stop    Remove everything: scripts/demo.sh clean"
