#!/bin/sh
# Entry point of the ledgerkeep images. Waits for the config the init service
# writes, prepares a client node's directories (the files `backup client`
# archives), then runs the command. On `docker stop` (SIGTERM) it stops the
# command and then the node components the agent started (ledgerd outlives
# its agent on purpose), so a ledger DB is closed cleanly, not killed with the
# container.
set -eu
if [ "${LEDGERKEEP_WAIT_CONFIG:-1}" = 1 ] && [ -n "${LEDGERKEEP_CONFIG:-}" ]; then
  n=0
  while [ ! -f "$LEDGERKEEP_CONFIG" ]; do
    n=$((n + 1))
    [ "$n" -le 120 ] || { echo "entrypoint: $LEDGERKEEP_CONFIG missing (did the init service run?)" >&2; exit 1; }
    sleep 1
  done
fi
if [ "${LEDGERKEEP_ROLE:-}" = client ] && [ -n "${LEDGERKEEP_NODE:-}" ]; then
  dir="/var/lib/ledgerkeep/$LEDGERKEEP_NODE/client"
  mkdir -p "$dir/db" "$dir/config"
  [ -f "$dir/config/environment-vars" ] || echo "LEDGER_API_PORT=6865" >"$dir/config/environment-vars"
fi

"$@" &
child=$!
stop() {
  kill -TERM "$child" 2>/dev/null || true
  wait "$child" 2>/dev/null || true
  # Node components: ledgerd and the client stand-in (their stop_timeout_s is 30).
  pids=$(pgrep -x ledgerd || true)
  [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
  n=0
  while [ -n "$(pgrep -x ledgerd || true)" ] && [ "$n" -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
  exit 0
}
trap stop TERM INT
set +e
wait "$child"
rc=$?
# A trapped signal interrupts wait; stop() exits. Otherwise the command ended.
exit "$rc"
