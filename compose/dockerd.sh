#!/usr/bin/env bash
# A private Docker engine for the compose cluster, isolated from the outside:
# no iptables rules, no NAT masquerading, no IP forwarding, its own data root,
# exec root, socket and pidfile under $LK_DOCKER_DIR (default
# /var/tmp/ledgerkeep-docker), so it clashes with no other engine.
#
#   compose/dockerd.sh start   start it unless one answers on our socket; wait for `docker info`
#   compose/dockerd.sh stop    stop it, only if this script started it (our pidfile)
#   compose/dockerd.sh env     print `export DOCKER_HOST=...` for eval
#   compose/dockerd.sh status  exit 0 if the engine answers
#
# Exit 77 (skip) with the reason when the engine cannot run here: not root,
# no dockerd, no overlay filesystem, no namespaces.
set -euo pipefail

LK_DOCKER_DIR="${LK_DOCKER_DIR:-/var/tmp/ledgerkeep-docker}"
SOCK="$LK_DOCKER_DIR/docker.sock"
PIDFILE="$LK_DOCKER_DIR/dockerd.pid"
LOG="$LK_DOCKER_DIR/dockerd.log"
export DOCKER_HOST="unix://$SOCK"

skip() { printf 'dockerd.sh: SKIP: %s\n' "$*" >&2; exit 77; }
say() { printf '==> %s\n' "$*" >&2; }

answers() { timeout 10 docker info >/dev/null 2>&1; }

preflight() {
  [ "$(id -u)" = 0 ] || skip "dockerd needs root (running as uid $(id -u))"
  command -v dockerd >/dev/null || skip "no dockerd (apt-get install docker.io)"
  command -v docker >/dev/null || skip "no docker client (apt-get install docker.io)"
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
  grep -qw overlay /proc/filesystems || skip "the kernel has no overlay filesystem"
  for ns in mnt pid net uts ipc; do
    [ -e "/proc/self/ns/$ns" ] || skip "the kernel has no $ns namespaces"
  done
  unshare --mount --pid --net --uts --ipc --fork true 2>/dev/null \
    || skip "cannot create namespaces here (unshare failed: no privilege or no kernel support)"
}

start() {
  if answers; then say "dockerd already answers on $SOCK"; return 0; fi
  preflight
  mkdir -p "$LK_DOCKER_DIR"
  if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then rm -f "$PIDFILE"; fi
  say "starting dockerd (root $LK_DOCKER_DIR, log $LOG)"
  setsid dockerd \
    --host "unix://$SOCK" \
    --data-root "$LK_DOCKER_DIR/data" \
    --exec-root "$LK_DOCKER_DIR/exec" \
    --pidfile "$PIDFILE" \
    --storage-driver overlay2 \
    --iptables=false --ip-masq=false --ip-forward=false --ip6tables=false \
    --bridge=none \
    >"$LOG" 2>&1 </dev/null &
  local pid=$! n=0
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      skip "dockerd exited during start-up (log above, full log in $LOG)"
    fi
    n=$((n + 1))
    if [ "$n" -gt 60 ]; then
      kill -TERM "$pid" 2>/dev/null || true
      tail -n 20 "$LOG" >&2 || true
      skip "dockerd did not answer within 60 s"
    fi
    sleep 1
  done
  echo "$pid" >"$LK_DOCKER_DIR/started-by-us"
  say "dockerd $(docker version --format '{{.Server.Version}}') answers (pid $pid, $(docker info --format '{{.Driver}}'))"
}

stop() {
  local marker="$LK_DOCKER_DIR/started-by-us"
  if [ ! -f "$marker" ]; then say "dockerd was not started by this script; leaving it"; return 0; fi
  local pid; pid=$(cat "$marker")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    local n=0
    while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 60 ]; do sleep 0.5; n=$((n + 1)); done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$marker" "$PIDFILE"
  # dockerd leaves its default netns bind mount (exec/netns/default) behind:
  # unmount whatever is still mounted under our directory, deepest first.
  local m
  for m in $(awk -v d="$LK_DOCKER_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export DOCKER_HOST=unix://$SOCK" ;;
  status) answers ;;
  *) echo "usage: compose/dockerd.sh start|stop|env|status" >&2; exit 2 ;;
esac
