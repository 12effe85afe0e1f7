#!/usr/bin/env bash
# ceph-rgw.sh start|stop|status|env|fixture-start|fixture-stop|
#             extra-gateway-start|extra-gateway-kill:
# a one-node Ceph with a RADOS Gateway on loopback, for the S3 tests (issue 18).
#
#   start   1 monitor, 1 OSD on memstore (pool size 1, auth none), radosgw
#           with an HTTP and an HTTPS port (a self-signed CA made here), and
#           one S3 user with generated keys. Writes $DIR/env (endpoints, keys,
#           CA path). A gateway already running in $DIR is reused.
#   stop    stops what `start` started (by the pids it recorded, nothing else)
#           and removes $DIR.
#   fixture-start, fixture-stop
#           what ctest's fixture runs: fixture-start is start but notes when it
#           started the gateway itself; fixture-stop stops only such a one, so
#           a gateway started by hand outlives a test run that reused it.
#   extra-gateway-start NAME PORT, extra-gateway-kill NAME
#           a second radosgw on the same cluster (same users and buckets) on
#           127.0.0.1:PORT, and its SIGKILL: for tests that kill a gateway
#           mid-transfer while others keep using the main one.
#   status  exit 0 if the gateway in $DIR answers, 1 otherwise.
#   env     prints $DIR/env.
#
# Everything lives under $LK_RGW_DIR (default /var/tmp/ledgerkeep-rgw): the
# config, the monitor's store, logs, pidfiles, the CA. The OSD keeps objects
# in memory (memstore, at most $LK_RGW_MEMSTORE_BYTES, default 4 GiB), so a
# stop loses them all. Ports (loopback only) start at $LK_RGW_PORT_BASE
# (default 17480): +0 HTTP, +1 HTTPS, +2 monitor (+3: the extra gateway
# tests/s3 kills); daemons' own ports
# 17500-17599 (below the ephemeral range and clear of the project's other
# test ports).
#
# Exits 77 (ctest's "skipped") with the reason when it cannot run here: not
# root, or Debian's ceph-mon / ceph-osd / radosgw / ceph-common / openssl
# missing.
set -euo pipefail

DIR=${LK_RGW_DIR:-/var/tmp/ledgerkeep-rgw}
PORT_BASE=${LK_RGW_PORT_BASE:-17480}
HTTP_PORT=$PORT_BASE
HTTPS_PORT=$((PORT_BASE + 1))
MON_PORT=$((PORT_BASE + 2))
MS_PORT_MIN=${LK_RGW_MS_PORT_MIN:-17500}
MS_PORT_MAX=$((MS_PORT_MIN + 99))
MEMSTORE_BYTES=${LK_RGW_MEMSTORE_BYTES:-4294967296}
START_TIMEOUT_S=${LK_RGW_START_TIMEOUT_S:-120}
CONF=$DIR/ceph.conf
# radosgw and radosgw-admin loop on authentication without these (seen with
# Debian's 16.2 on loopback with auth none).
CRC=(--ms-mon-client-mode=crc --ms-client-mode=crc)

log() { printf 'ceph-rgw: %s\n' "$*" >&2; }
skip() { printf 'SKIP: %s\n' "$*"; exit 77; }
die() { printf 'ceph-rgw: %s\n' "$*" >&2; exit 1; }

check_can_run() {
  [ "$(id -u)" -eq 0 ] || skip "the Ceph RGW harness needs root (ceph-osd and radosgw run as root here); run as root"
  local b
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool openssl curl; do
    command -v "$b" >/dev/null 2>&1 ||
      skip "$b not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common openssl curl)"
  done
}

gateway_answers() {
  [ -f "$DIR/env" ] || return 1
  curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$HTTP_PORT/" 2>/dev/null
}

write_conf() {
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon host = v2:127.0.0.1:$MON_PORT
public network = 127.0.0.0/8
ms bind ipv6 = false
ms bind port min = $MS_PORT_MIN
ms bind port max = $MS_PORT_MAX
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
# A small OSD (it would size its caches for a real disk otherwise).
osd memory target = 939524096

[mon.a]
mon data = $DIR/mon
[osd.0]
osd data = $DIR/osd
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$HTTP_PORT ssl_endpoint=127.0.0.1:$HTTPS_PORT ssl_certificate=$DIR/tls/server.crt ssl_private_key=$DIR/tls/server.key
rgw data = $DIR/rgw
rgw dns name = localhost
rgw thread pool size = 64
rgw enable usage log = false
EOF
}

# A CA and a server certificate for 127.0.0.1 and localhost signed by it.
make_tls() {
  local t=$DIR/tls
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=ledgerkeep test CA" \
    -keyout "$t/ca.key" -out "$t/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.localhost\nbasicConstraints=CA:FALSE\n' >"$t/ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial \
    -days 30 -extfile "$t/ext" -out "$t/server.crt" 2>/dev/null
}

# start_daemon NAME CMD...: runs CMD in its own session with every output in
# $DIR/log/NAME.out (so no caller's pipe stays open) and records its pid.
start_daemon() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$DIR/log/$name.out" 2>&1 &
  echo $! >"$DIR/run/$name.started-pid"
}

wait_for() {  # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what (logs: $DIR/log)"
    sleep 0.5
  done
}

cmd_start() {
  check_can_run
  if gateway_answers; then
    log "reusing the gateway already running in $DIR"
    return 0
  fi
  [ ! -e "$DIR" ] || cmd_stop
  local t0=$SECONDS
  mkdir -p "$DIR"/{run,log,mon,osd,rgw}
  chmod 700 "$DIR"
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  make_tls
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
    >"$DIR/log/mkfs-mon.out" 2>&1 || die "ceph-mon --mkfs failed: $(tail -5 "$DIR/log/mkfs-mon.out")"
  start_daemon mon.a ceph-mon -c "$CONF" -f -i a
  wait_for "the monitor" 30 ceph -c "$CONF" --connect-timeout 5 mon stat

  local osd_uuid id
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(ceph -c "$CONF" osd new "$osd_uuid")
  [ "$id" = 0 ] || die "expected OSD id 0, got '$id'"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$DIR/log/mkfs-osd.out" 2>&1 ||
    die "ceph-osd --mkfs failed: $(tail -5 "$DIR/log/mkfs-osd.out")"
  start_daemon osd.0 ceph-osd -c "$CONF" -f -i 0
  wait_for "the OSD to come up" 60 sh -c "ceph -c '$CONF' osd stat | grep -q '1 up'"

  start_daemon client.rgw radosgw -c "$CONF" -f -n client.rgw "${CRC[@]}"
  wait_for "radosgw on 127.0.0.1:$HTTP_PORT" "$START_TIMEOUT_S" \
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$HTTP_PORT/"

  local access secret
  access=LK$(openssl rand -hex 9 | tr 'a-f' 'A-F')
  secret=$(openssl rand -base64 30 | tr -d '/+=\n')
  radosgw-admin -c "$CONF" -n client.admin "${CRC[@]}" user create --uid=ledgerkeep \
    --display-name="ledgerkeep tests" --access-key="$access" --secret-key="$secret" \
    >"$DIR/log/user-create.out" 2>&1 || die "radosgw-admin user create failed: $(tail -5 "$DIR/log/user-create.out")"

  umask 077
  cat >"$DIR/env.tmp" <<EOF
LK_RGW_ENDPOINT=http://127.0.0.1:$HTTP_PORT
LK_RGW_HTTPS_ENDPOINT=https://127.0.0.1:$HTTPS_PORT
LK_RGW_HTTPS_HOST=localhost:$HTTPS_PORT
LK_RGW_CA_BUNDLE=$DIR/tls/ca.crt
LK_RGW_REGION=us-east-1
LK_RGW_ACCESS_KEY_ID=$access
LK_RGW_SECRET_ACCESS_KEY=$secret
LK_RGW_DIR=$DIR
EOF
  mv "$DIR/env.tmp" "$DIR/env"
  log "gateway up in $((SECONDS - t0))s: http://127.0.0.1:$HTTP_PORT https://127.0.0.1:$HTTPS_PORT (env: $DIR/env)"
}

# stop_daemon NAME: SIGTERM to the process `start` recorded for NAME (only if
# that pid still runs a Ceph binary), SIGKILL after 5 s. Objects live in
# memory and go with the OSD, so nothing is lost that a clean stop keeps.
stop_daemon() {
  local f=$DIR/run/$1.started-pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  # Still running (a zombie waiting for its reaper has stopped) and still a
  # Ceph binary (the pid was not reused).
  is_ours() {
    [ -n "$pid" ] && grep -qE '^(ceph-mon|ceph-osd|radosgw)' "/proc/$pid/comm" 2>/dev/null &&
      ! grep -qE '^State:[[:space:]]+[ZX]' "/proc/$pid/status" 2>/dev/null
  }
  is_ours || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 5))
  while is_ours; do
    if [ $SECONDS -ge $deadline ]; then
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
}

# A second radosgw on the same cluster, for tests that kill a gateway
# without taking the shared one from the other tests.
cmd_extra_start() {
  local name=${1:?usage: extra-gateway-start NAME PORT} port=${2:?usage: extra-gateway-start NAME PORT}
  [[ $name =~ ^[a-z0-9-]+$ ]] || die "extra gateway name '$name': use a-z, 0-9 and '-'"
  [[ $port =~ ^[0-9]+$ ]] || die "extra gateway port '$port' is not a number"
  gateway_answers || die "no gateway running in $DIR: run '$0 start' first"
  mkdir -p "$DIR/rgw-$name"
  local before
  before=$(control_watchers)
  start_daemon "client.rgw-$name" radosgw -c "$CONF" -f -n "client.rgw-$name" "${CRC[@]}" \
    --rgw-frontends "beast endpoint=127.0.0.1:$port" --rgw-data "$DIR/rgw-$name" --rgw-dns-name localhost
  wait_for "radosgw $name on 127.0.0.1:$port" "$START_TIMEOUT_S" \
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"
  # Its RADOS client address: the watches it set on the control objects.
  comm -13 <(echo "$before") <(control_watchers) >"$DIR/run/client.rgw-$name.addrs"
  log "extra gateway $name up: http://127.0.0.1:$port"
}

# The client addresses watching the gateways' control objects, one a line.
control_watchers() {
  local i
  for i in 0 1 2 3 4 5 6 7; do
    rados -c "$CONF" -p default.rgw.control listwatchers "notify.$i" 2>/dev/null
  done | sed -n 's/^watcher=\([^ ]*\) .*/\1/p' | sort -u
}

cmd_extra_kill() {
  local name=${1:?usage: extra-gateway-kill NAME} f pid
  f=$DIR/run/client.rgw-$name.started-pid
  [ -f "$f" ] || die "no extra gateway '$name' was started in $DIR"
  pid=$(cat "$f")
  if grep -q '^radosgw' "/proc/$pid/comm" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -f "$f"
  # A killed gateway's watches would hold every metadata change of the
  # others (a bucket created, ...) until the OSD times them out (30 s):
  # blocklisting its address drops them now, as Ceph does for dead clients.
  local addr
  while read -r addr; do
    [ -n "$addr" ] && timeout 20 ceph -c "$CONF" osd blocklist add "$addr" >/dev/null 2>&1 || true
  done <"$DIR/run/client.rgw-$name.addrs"
  rm -f "$DIR/run/client.rgw-$name.addrs"
}

cmd_stop() {
  [ -d "$DIR" ] || return 0
  # The gateways first (they would wait for the OSD), the monitor last.
  local f name
  for f in "$DIR"/run/client.rgw-*.started-pid; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .started-pid)
    stop_daemon "$name"
  done
  stop_daemon client.rgw
  stop_daemon osd.0
  stop_daemon mon.a
  case "$DIR" in
    /|/var|/var/tmp|/tmp|"$HOME") die "refusing to remove $DIR" ;;
  esac
  rm -rf "$DIR"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  fixture-start)
    check_can_run
    if gateway_answers; then
      log "reusing the gateway already running in $DIR (started by hand: the test run leaves it running)"
    else
      cmd_start
      touch "$DIR/run/fixture-owned"
    fi
    ;;
  extra-gateway-start) shift; cmd_extra_start "$@" ;;
  extra-gateway-kill) shift; cmd_extra_kill "$@" ;;
  fixture-stop)
    if [ -f "$DIR/run/fixture-owned" ]; then cmd_stop; else log "not stopping a gateway this test run did not start"; fi
    ;;
  status) gateway_answers ;;
  env) cat "$DIR/env" ;;
  *) echo "usage: $0 start|stop|status|env|fixture-start|fixture-stop|extra-gateway-start NAME PORT|extra-gateway-kill NAME" >&2; exit 2 ;;
esac
