#!/bin/sh
# Entry point of the ledgerkeep images. Waits for the config the init service
# writes, prepares a client node's directories (the files `backup client`
# archives), then runs the command.
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
exec "$@"
