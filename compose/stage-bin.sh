#!/usr/bin/env bash
# Stages the host build's binaries into compose/host-bin/ (the fast image
# path's build context, git-ignored), stripped of debug info. Copies only what
# changed. BIN_DIR: the build's bin directory (default <repo>/build/bin).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-${BIN_DIR:-$here/../build/bin}}"
out="$here/host-bin"
mkdir -p "$out"
for b in ledgerkeep ledgerkeep-agent ledgerkeep-broker ledgerkeep-db ledgerd; do
  [ -x "$bin/$b" ] || { echo "stage-bin.sh: $bin/$b missing (./run build first)" >&2; exit 2; }
  if [ ! -f "$out/$b" ] || [ "$bin/$b" -nt "$out/$b" ]; then
    strip --strip-debug -o "$out/$b.tmp" "$bin/$b" && mv "$out/$b.tmp" "$out/$b"
    touch -r "$bin/$b" "$out/$b"
  fi
done
echo "==> staged $(ls "$out" | wc -l) binaries from $bin into $out ($(du -sh "$out" | cut -f1))" >&2
