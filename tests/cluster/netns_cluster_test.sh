#!/usr/bin/env bash
# The multi-host local cluster (./run cluster, network-namespace mode) end to
# end: a 2-replica cluster comes up with every agent alive; a replica backs up
# to the backup host over SSH (from its own address; its work dir is deep
# enough that ssh's ControlPath must move to /tmp); an agent's HTTP API is
# refused from another host until its node config's [http] listen names the
# node's address; a partitioned replica becomes suspect/lost and is alive
# again after heal; a slowed replica still answers a ping; `down` leaves no
# namespace, link, iptables rule or qdisc behind. Needs root (exit 77 = skipped otherwise).
#
# Usage: netns_cluster_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="$1"
export BUILD_DIR="$2"
lk="$BUILD_DIR/bin/ledgerkeep"
run="$src/run"

if [ "$(id -u)" -ne 0 ] || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: the netns cluster needs root and 'ip netns'"
  exit 77
fi

tmp="$(mktemp -d /tmp/lk-netns-test-XXXXXX)"
export CLUSTER_DIR="$tmp/cluster"
export LEDGERKEEP_CONFIG="$CLUSTER_DIR/cluster.toml"

fail() {
  echo "FAIL: $*"
  echo "--- cluster status"; "$run" cluster status 2>&1 || true
  echo "--- nodes"; "$lk" nodes 2>&1 || true
  for f in "$CLUSTER_DIR"/logs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
  exit 1
}

cleanup() {
  "$run" cluster down >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The root namespace's state, to compare after `down` (other clusters may come
# and go meanwhile, so only this cluster's names are compared).
net_state() {
  local prefix="$1"
  ip netns list | grep -- "$prefix" || true
  ip -o link show | grep -- "$prefix" || true
  iptables-save 2>/dev/null | grep -- "$prefix" || true
  tc qdisc show | grep -- "$prefix" || true
}

state_of() {
  "$lk" nodes --json 2>/dev/null |
    python3 -c 'import json, sys; print(next((n["state"] for n in json.load(sys.stdin) if n["node"] == sys.argv[1]), ""))' "$1" 2>/dev/null
}

wait_state() {  # NODE REGEX SECONDS
  local i s=""
  for i in $(seq 1 $(($3 * 10))); do
    s="$(state_of "$1")"
    [[ "$s" =~ ^($2)$ ]] && { echo "$1: $s after ~$((i / 10)) s"; return 0; }
    sleep 0.1
  done
  fail "$1 is '$s', expected $2 within $3 s"
}

"$run" cluster up --replicas 2 --clients 1 --heartbeat-ms 200 --net netns || fail "cluster up"
prefix="$(sed -n 's/^NET_PREFIX=//p' "$CLUSTER_DIR/net.env")"
[ -n "$prefix" ] || fail "no net.env"
"$run" cluster status
[ "$("$lk" nodes --json | grep -o '"state":"alive"' | wc -l)" -eq 3 ] || fail "not every agent is alive"
namespaces="$(ip netns list | awk '{print $1}')"
for n in broker r1 r2 c1 backup; do
  grep -qx -- "$prefix-$n" <<<"$namespaces" || fail "no netns for $n"
done
pids="$(ip netns pids "$prefix-broker")"
grep -qx -- "$(cat "$CLUSTER_DIR/pids/broker.pid")" <<<"$pids" || fail "the broker does not run in its netns"

echo "== a backup of r1 to the backup host, over SSH"
# shellcheck disable=SC1091
. "$CLUSTER_DIR/backup.env"
"$lk" backup run-now --node r1 --destination "$BACKUP_DESTINATION" --ssh-key "$BACKUP_SSH_KEY" ||
  fail "backup run-now to $BACKUP_DESTINATION"
snap="$(ls "$CLUSTER_DIR/backup/backups/r1/snapshots")"
[ -f "$CLUSTER_DIR/backup/backups/r1/snapshots/$snap/DONE" ] || fail "no complete snapshot on the backup host"
grep -q "Accepted publickey for root from $(sed -n 's/^NET_SUBNET=//p' "$CLUSTER_DIR/net.env").11 " \
  "$CLUSTER_DIR/logs/backup.log" || fail "the backup did not come from r1's address"

echo "== r1's HTTP API: on its own loopback only, until its node config opens it"
r1_addr="$("$run" cluster status --json |
  python3 -c 'import json, sys; print(next(n["address"] for n in json.load(sys.stdin) if n["node"] == "r1"))')"
ip netns exec "$prefix-r1" curl -sf -m 5 127.0.0.1:8546/api/node/status | grep -q '"node":"r1"' ||
  fail "r1's HTTP API does not answer on r1's loopback"
rc=0
ip netns exec "$prefix-r2" curl -s -m 5 -o /dev/null "http://$r1_addr:8546/api/node/status" || rc=$?
[ "$rc" -eq 7 ] || fail "curl from r2 to $r1_addr:8546 exited $rc; expected 7 (connection refused)"
printf '\n[http]\nlisten = "%s:8546"\n' "$r1_addr" >>"$CLUSTER_DIR/nodes/r1.toml"
"$run" cluster kill r1
"$run" cluster start r1
reachable=0
for _ in $(seq 1 50); do
  if ip netns exec "$prefix-r2" curl -sf -m 2 "http://$r1_addr:8546/api/node/status" | grep -q '"node":"r1"'; then
    reachable=1
    break
  fi
  sleep 0.2
done
[ "$reachable" = 1 ] || fail "r1's HTTP API is not reachable from r2 at $r1_addr:8546 after [http] listen"
wait_state r1 alive 20

echo "== partition r1"
"$run" cluster partition r1
"$run" cluster status | grep -E '^r1 .*partitioned' || fail "status does not show r1 partitioned"
wait_state r1 'suspect|lost' 15
"$lk" ping --node r2 --wait-s 10 >/dev/null || fail "r2 unreachable while r1 is partitioned"
echo "== heal r1"
"$run" cluster heal r1
wait_state r1 alive 40
"$lk" ping --node r1 --wait-s 20 || fail "ping r1 after heal"

echo "== slow r2"
"$run" cluster slow r2 --rate 1mbit --loss 0.05
"$run" cluster status | grep -E '^r2 .*slow' || fail "status does not show r2 slow"
"$lk" ping --node r2 --wait-s 30 || fail "ping r2 while slow"
"$run" cluster fast r2
"$run" cluster status | grep -E '^r2 .* ok$' || fail "r2 is not back to ok after fast"

echo "== bad input"
out="$("$run" cluster partition r9 2>&1 || true)"
grep -q "unknown node 'r9'" <<<"$out" || fail "partition r9 not refused: $out"
out="$("$run" cluster slow r2 --loss 7 2>&1 || true)"
grep -q "not a probability" <<<"$out" || fail "--loss 7 not refused: $out"

echo "== down"
"$run" cluster down
left="$(net_state "$prefix")"
[ -z "$left" ] || fail "leftovers after down: $left"
"$run" cluster down  # idempotent
echo "PASS"
