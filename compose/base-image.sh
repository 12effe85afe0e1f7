#!/usr/bin/env bash
# The Debian base image of the compose images, made without a registry:
# `debootstrap --variant=minbase bookworm` from the machine's own Debian mirror,
# cached as a tarball OUTSIDE the repository, then `docker import`ed as
# ledgerkeep/debian:bookworm. Idempotent: a no-op when the image exists, a
# quick import when only the tarball does.
#
#   LK_BASE_CACHE   cache dir (default /var/cache/ledgerkeep)
#   LK_DEBIAN_MIRROR  mirror (default: the first deb.debian.org-style URI in /etc/apt/sources.list*)
set -euo pipefail

IMAGE="${LK_BASE_IMAGE:-ledgerkeep/debian:bookworm}"
CACHE="${LK_BASE_CACHE:-/var/cache/ledgerkeep}"
TAR="$CACHE/debian-bookworm.tar"
say() { printf '==> %s\n' "$*" >&2; }

mirror() {
  if [ -n "${LK_DEBIAN_MIRROR:-}" ]; then echo "$LK_DEBIAN_MIRROR"; return; fi
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
      | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ')
  echo "${m:-http://deb.debian.org/debian}"
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "$IMAGE exists"; exit 0
fi
if [ ! -s "$TAR" ]; then
  command -v debootstrap >/dev/null || { echo "base-image.sh: no debootstrap (apt-get install debootstrap)" >&2; exit 2; }
  mkdir -p "$CACHE"
  root="$CACHE/rootfs.tmp"
  rm -rf "$root"
  m=$(mirror)
  say "debootstrap --variant=minbase bookworm from $m (first time only, a few minutes)"
  start=$(date +%s)
  debootstrap --variant=minbase bookworm "$root" "$m" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
  # The container's apt uses the same mirror; no docs or caches in the image.
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$m" "$m" >"$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$TAR.tmp" . && mv "$TAR.tmp" "$TAR"
  rm -rf "$root"
  say "debootstrap + tar took $(( $(date +%s) - start )) s ($(du -h "$TAR" | cut -f1))"
fi
say "docker import $TAR as $IMAGE"
docker import "$TAR" "$IMAGE" >/dev/null
