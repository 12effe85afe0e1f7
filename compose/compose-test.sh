#!/usr/bin/env bash
# The docker-compose cluster, for real (issue 17; `./run compose-test`, and
# ctest's compose.cluster, so `./run test` runs it):
#   1. a private, isolated dockerd (compose/dockerd.sh) unless one answers
#   2. the Debian base image (compose/base-image.sh; debootstrap once, cached)
#   3. the fast images: the host build's binaries (compose/stage-bin.sh + Dockerfile.host)
#   4. `up -d`, every health check; then the operator guide's compose commands
#      as printed, in the broker container: `ledgerkeep nodes` (all alive),
#      `ledgerkeep ping` (all Ok), a backup schedule to the backup container
#      over SSH, run-now, backup list; verifyChain in the backup container
#   5. the prometheus container scrapes the broker and every agent: every
#      target up, the backup metrics of r1-r4, the alert rules loaded
#   6. a maintenance run (online, with the client archive), its snapshot set
#      and archive checked on the backup container
#   7. a restore of r1's latest snapshot onto the clone1 container, read there
#   8. a maintenance run with the r3 container killed (SIGKILL) mid-run: the
#      run rolls back, resumes or ends incomplete, never hangs; r3 comes back
#      and the cluster serves (all alive, nothing wedged, blocks advance)
#   9. `down -v` and nothing left behind (no container, network or volume)
# LK_COMPOSE_PREBUILT=1: skip 3 and run the images as they are (those of
# `./run compose-source-build`).
# Exit 0 only after running all of it; 77 (skipped) with the reason when the
# engine cannot run here; 1 on a failure. Stops dockerd again if it started it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
BIN="${BIN:-${BUILD_DIR:-$root/build}/bin}"
export LK_DOCKER_DIR="${LK_DOCKER_DIR:-/var/tmp/ledgerkeep-docker}"
export DOCKER_HOST="unix://$LK_DOCKER_DIR/docker.sock"
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
PROJECT="${LK_COMPOSE_PROJECT:-lkcomposetest}"
DC=(docker-compose -p "$PROJECT" -f "$here/docker-compose.yml")
t0=$(date +%s)
say() { printf '==> [%3ds] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }
skip() { printf 'compose-test: SKIP: %s\n' "$*" >&2; exit 77; }
fail() { printf 'compose-test: FAIL: %s\n' "$*" >&2; exit 1; }

command -v docker-compose >/dev/null || skip "docker-compose is not installed (apt-get install docker-compose)"
[ "${LK_COMPOSE_PREBUILT:-0}" = 1 ] || [ -x "$BIN/ledgerkeep-agent" ] \
  || fail "$BIN has no ledgerkeep-agent (./run build first, or BIN=...)"

# 1. The engine. 77 from dockerd.sh is passed on as a skip.
# Stop it at the end only if this run started it.
started=0; "$here/dockerd.sh" status || started=1
rc=0; "$here/dockerd.sh" start || rc=$?
[ "$rc" = 0 ] || exit "$rc"

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
    "${DC[@]}" ps >&2 || true
    "${DC[@]}" logs --tail=30 >&2 || true
  fi
  "${DC[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  [ "$started" = 0 ] || "$here/dockerd.sh" stop || true
  say "done (exit $rc)"
}
trap cleanup EXIT

# 2. + 3. Images.
say "base image"
"$here/base-image.sh"
if [ "${LK_COMPOSE_PREBUILT:-0}" = 1 ]; then
  # The images as they are (e.g. from `./run compose-source-build`).
  for i in ledgerkeep:local ledgerkeep-backup:local ledgerkeep-prometheus:local; do
    docker image inspect "$i" >/dev/null 2>&1 || fail "LK_COMPOSE_PREBUILT=1 but there is no image $i"
  done
  say "using the images as built (LK_COMPOSE_PREBUILT=1)"
else
  say "staging the host build's binaries"
  "$here/stage-bin.sh" "$BIN"
  say "building the images (fast path)"
  "${DC[@]}" build -q >/dev/null || fail "docker-compose build"
fi

# 4. The cluster.
say "up -d"
"${DC[@]}" up -d --no-build || fail "docker-compose up -d"
say "waiting for every health check"
services=$("${DC[@]}" config --services | grep -vx init)
deadline=$(( $(date +%s) + ${LK_HEALTH_TIMEOUT:-180} ))
while :; do
  pending=""
  for s in $services; do
    id=$("${DC[@]}" ps -q "$s")
    st=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
    [ "$st" = healthy ] || pending="$pending $s:$st"
  done
  [ -z "$pending" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy in time:$pending"
  sleep 2
done
say "all healthy: $(echo $services)"

nodes=$("${DC[@]}" exec -T broker ledgerkeep nodes) || fail "ledgerkeep nodes"
echo "$nodes"
agents=$(echo "$nodes" | awk 'NR > 1 {print $1}' | sort | tr '\n' ' ')
[ "$agents" = "c1 clone1 r1 r2 r3 r4 " ] || fail "ledgerkeep nodes lists '$agents', not c1 clone1 r1 r2 r3 r4"
if echo "$nodes" | awk 'NR > 1 && !/ alive /' | grep -q .; then fail "a node is not alive"; fi
ping=$("${DC[@]}" exec -T broker ledgerkeep ping) || fail "ledgerkeep ping"
echo "$ping"
if echo "$ping" | awk 'NR > 1 && $2 != "Ok"' | grep -q .; then fail "a ping failed"; fi
[ "$(echo "$ping" | awk 'NR > 1' | wc -l)" = 5 ] || fail "ping (the members: not the clone) answered by other than 5 nodes"

# The first backup, as the README prints it: to the backup container over SSH.
say "backup schedule, run-now, list, verifyChain in the backup container"
"${DC[@]}" exec -T broker ledgerkeep backup schedule --destination 'root@backup:/srv/backups/{node}' \
    --ssh-key /etc/ledgerkeep/keys/backup_id --frequency hourly --time-zone UTC --keep 24 \
  || fail "backup schedule"
run=$(timeout 300 "${DC[@]}" exec -T broker ledgerkeep backup run-now) || fail "backup run-now: $run"
[ "$(echo "$run" | grep -c '^r[1-4] *done ')" -ge 4 ] || fail "backup run-now did not finish on r1-r4: $run"
for r in r1 r2 r3 r4; do
  list=$("${DC[@]}" exec -T broker ledgerkeep backup list --node "$r") || fail "backup list --node $r"
  echo "$list" | grep -q '(latest) *yes *yes' || fail "backup list --node $r: no complete, consistent snapshot: $list"
  v=$("${DC[@]}" exec -T backup sh -c \
      "ledgerkeep-db /srv/backups/$r/snapshots/\$(ls /srv/backups/$r/snapshots | tail -1)/data verifyChain") \
    || fail "verifyChain $r: $v"
  echo "$r: $v"
  echo "$v" | grep -q '"result":"ok"' || fail "verifyChain $r: $v"
done

# JSON from the CLI: the last object of `text` with key `key` (the CLI's
# --json prints one object per line; a run prints events before its report).
last_json() {  # key, text on stdin -> that object, one line
  python3 -c '
import json, sys
key = sys.argv[1]
objs = []
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        try: objs.append(json.loads(line))
        except ValueError: pass
objs = [o for o in objs if key in o]
if not objs: sys.exit(1)
print(json.dumps(objs[-1]))' "$1"
}
jget() {  # python expression over `o`, JSON on stdin
  python3 -c 'import json, sys; o = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# 5. Prometheus scrapes the broker and every agent.
say "prometheus: every target up, r1-r4's backup metrics, the alert rules"
promq() {  # PromQL -> the API's JSON
  "${DC[@]}" exec -T prometheus curl -sf --get --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query
}
deadline=$(( $(date +%s) + 90 ))
while :; do
  up=$(promq 'up' | jget 'sorted("%s=%s" % (r["metric"]["instance"], r["value"][1]) for r in o["data"]["result"])' || echo "[]")
  backups=$(promq 'ledgerkeep_backup_last_success_timestamp_seconds{job="ledgerkeep-agent"} > 0' \
            | jget 'sorted(r["metric"].get("node", "?") for r in o["data"]["result"])' || echo "[]")
  if [ "$(echo "$up" | grep -o '=1' | wc -l)" = 7 ] && [ "$backups" = "['r1', 'r2', 'r3', 'r4']" ]; then break; fi
  [ "$(date +%s)" -lt "$deadline" ] || fail "prometheus: targets $up; backup metrics for $backups (want 7 targets up and r1-r4)"
  sleep 3
done
echo "prometheus: up $up; last successful backup for $backups"
rules=$("${DC[@]}" exec -T prometheus curl -sf http://127.0.0.1:9090/api/v1/rules \
        | jget 'sum(len(g["rules"]) for g in o["data"]["groups"])') || fail "prometheus: /api/v1/rules"
[ "$rules" -ge 5 ] || fail "prometheus loaded $rules alert rules (monitoring/alerts.yml has more)"
echo "prometheus: $rules alert rules loaded"

# 6. A maintenance run: the client's destination, then the runbook's steps.
say "maintenance run (online, client archive compose-clients)"
"${DC[@]}" exec -T broker ledgerkeep backup configure --node c1 --destination 'root@backup:/srv/backups/{node}' \
    --ssh-key /etc/ledgerkeep/keys/backup_id || fail "backup configure --node c1"
out=$(timeout 300 "${DC[@]}" exec -T broker ledgerkeep --json maintenance run --archive compose-clients) \
  || fail "maintenance run: $(echo "$out" | tail -5)"
res=$(echo "$out" | last_json report) || fail "maintenance run printed no report: $(echo "$out" | tail -5)"
[ "$(echo "$res" | jget 'o["ok"] and o["report"].get("complete") is True')" = True ] \
  || fail "maintenance run did not complete: $res"
block=$(echo "$res" | jget 'o["report"]["common_block"]')
echo "maintenance run $(echo "$res" | jget 'o["run_id"]'): complete at block $block, pause $(echo "$res" | jget 'o["report"].get("pause_s")') s"
sets=$("${DC[@]}" exec -T broker ledgerkeep backup list --sets) || fail "backup list --sets"
echo "$sets"
echo "$sets" | grep -q "$block" || fail "backup list --sets shows no set at block $block"
"${DC[@]}" exec -T backup sh -c 'cd /srv/backups/c1 && sha256sum -c compose-clients.tar.gz.sha256 && tar tzf compose-clients.tar.gz >/dev/null' \
  || fail "the client archive on the backup container does not check"

# 7. A restore onto the clone container.
say "restore r1's latest snapshot onto clone1"
"${DC[@]}" exec -T broker ledgerkeep restore --node r1 --snapshot latest --to-node clone1 || fail "restore --to-node clone1"
last=$("${DC[@]}" exec -T clone1 ledgerkeep-db /var/lib/ledgerkeep/clone1/db getLastReachableBlockID | grep -o '[0-9]\+') \
  || fail "ledgerkeep-db on clone1"
[ "$last" -ge "$block" ] || fail "clone1 serves block $last, older than the run's block $block"
"${DC[@]}" exec -T clone1 ledgerkeep-db /var/lib/ledgerkeep/clone1/db rangeStats 1 "$last" || fail "rangeStats on clone1"
"${DC[@]}" exec -T clone1 pgrep -f 'ledgerd.*--read-only' >/dev/null || fail "clone1 runs no ledgerd --read-only"
echo "clone1 serves r1's snapshot read-only up to block $last"

# 8. A container killed mid-run.
say "maintenance run with the r3 container killed (SIGKILL) once the wedge step starts (the run must roll back)"
r3=$("${DC[@]}" ps -q r3)
since=$(date -u +%Y-%m-%dT%H:%M:%S)
runlog=$(mktemp)
timeout 300 "${DC[@]}" exec -T broker ledgerkeep --json maintenance run --wedge-timeout-s 20 --ship-timeout-s 30 \
  >"$runlog" 2>&1 &
runpid=$!
deadline=$(( $(date +%s) + 120 ))
until docker logs --since "$since" "$("${DC[@]}" ps -q broker)" 2>&1 | grep -q "(maintenance) wedge started"; do
  kill -0 "$runpid" 2>/dev/null || { cat "$runlog" >&2; fail "the run ended before its wedge step"; }
  [ "$(date +%s)" -lt "$deadline" ] || fail "the run did not reach its wedge step"
  sleep 0.2
done
docker kill "$r3" >/dev/null || fail "docker kill r3"
echo "killed r3 ($r3) at the wedge step"
rc=0; wait "$runpid" || rc=$?
res=$(last_json report <"$runlog") || { cat "$runlog" >&2; fail "the run with r3 killed printed no report (exit $rc)"; }
rm -f "$runlog"
outcome=$(echo "$res" | jget '"succeeded" if o["ok"] else "rolled back" if o["report"].get("rolled_back") else "incomplete" if o["report"].get("complete") is False else "failed"')
echo "the run with r3 killed: $outcome: $(echo "$res" | jget 'o.get("error", "")' | cut -c1-200)"
# The kill comes at the wedge step, so the run rolls back; had it landed after
# the checkpoint, the run would end incomplete (r3's checkpoint not shipped)
# with the cluster serving. It cannot succeed without r3, nor just fail.
case "$outcome" in
  "rolled back" | incomplete) ;;
  *) fail "the run with r3 killed neither rolled back nor ended incomplete: $res" ;;
esac
# The cluster serves: r3 again (restart policy, or started), all alive, nothing wedged, blocks advance.
sleep 1
if [ "$(docker inspect -f '{{.State.Running}}' "$r3")" = true ]; then
  echo "r3 restarted by its restart policy ($(docker inspect -f '{{.RestartCount}}' "$r3") restarts)"
else
  echo "r3 not restarted by the engine (a killed container counts as stopped by hand); docker start r3"
  docker start "$r3" >/dev/null || fail "docker start r3"
fi
deadline=$(( $(date +%s) + 120 ))
while :; do
  nodes=$("${DC[@]}" exec -T broker ledgerkeep nodes 2>/dev/null || true)
  st=$(docker inspect -f '{{.State.Health.Status}}' "$r3")
  if [ "$st" = healthy ] && [ "$(echo "$nodes" | awk 'NR > 1 && / alive /' | wc -l)" = 6 ]; then break; fi
  [ "$(date +%s)" -lt "$deadline" ] || fail "after the kill: r3 $st; nodes: $nodes"
  sleep 2
done
# `wedge status` exits 1 unless every replica is wedged; its JSON is {"r1": false, ...}.
wedged=$("${DC[@]}" exec -T broker ledgerkeep --json wedge status || true)
[ "$(echo "$wedged" | jget 'sorted(k for k, v in o.items() if v is False)')" = "['r1', 'r2', 'r3', 'r4']" ] \
  || fail "after the run, not every replica answers unwedged: $wedged"
b1=$("${DC[@]}" exec -T broker ledgerkeep --json blocks) || fail "blocks: $b1"
sleep 3
b2=$("${DC[@]}" exec -T broker ledgerkeep --json blocks) || fail "blocks: $b2"
python3 - "$b1" "$b2" <<'PY' || fail "the ledger does not advance on every replica after the kill: $b1 -> $b2"
import json, sys
a, b = (json.loads(x)["replicas"] for x in sys.argv[1:3])
print("blocks after the kill:", ", ".join("%s %d -> %d" % (r, a[r]["lastBlockID"], b[r]["lastBlockID"]) for r in sorted(b)))
sys.exit(0 if sorted(b) == ["r1", "r2", "r3", "r4"] and all(b[r]["lastBlockID"] > a[r]["lastBlockID"] for r in b) else 1)
PY
# Nothing lost: the first run's set is still listed, complete.
"${DC[@]}" exec -T broker ledgerkeep backup list --sets | grep -q "$block" \
  || fail "after the killed run, backup list --sets no longer shows the first run's set at block $block"
echo "after the kill: all 6 agents alive, nothing wedged, every replica's ledger advances, the first set kept"

say "down -v"
"${DC[@]}" down -v --remove-orphans
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT";
       docker network ls -q --filter "label=com.docker.compose.project=$PROJECT";
       docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || fail "left behind after down -v: $left"
say "PASS: healthy, nodes alive, ping Ok, backups verified on the backup container, prometheus scraping, maintenance run complete, restore onto clone1, r3 killed mid-run and the cluster serves, nothing left behind"
