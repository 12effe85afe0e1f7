#!/usr/bin/env bash
# The compose images built from source (`./run compose-source-build`):
# compose/Dockerfile compiles ledgerkeep inside a Debian bookworm image (run's
# BUILD_PACKAGES, CMake, JOBS compile jobs, default 2), then the runtime
# images `node` and `backup-server`; the prometheus image as in the fast path.
# Uses the private dockerd (compose/dockerd.sh; stopped again if this started
# it) and the debootstrap base (compose/base-image.sh). Prints the wall time.
# Then `docker-compose -f compose/docker-compose.yml up -d --no-build` runs
# the cluster on these images.
# Exit 77 (skipped) with the reason when the engine cannot run here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export LK_DOCKER_DIR="${LK_DOCKER_DIR:-/var/tmp/ledgerkeep-docker}"
export DOCKER_HOST="unix://$LK_DOCKER_DIR/docker.sock"
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
JOBS="${JOBS:-2}"
[[ "$JOBS" =~ ^[1-9][0-9]?$ ]] || { echo "source-build.sh: JOBS must be 1..99, not '$JOBS'" >&2; exit 2; }
t0=$(date +%s)
say() { printf '==> [%4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }

started=0; "$here/dockerd.sh" status || started=1
rc=0; "$here/dockerd.sh" start || rc=$?
[ "$rc" = 0 ] || exit "$rc"
[ "$started" = 0 ] || trap '"$here/dockerd.sh" stop || true' EXIT

say "base image"
"$here/base-image.sh"
say "building the images from source (compile jobs: $JOBS)"
# One compile for both runtime targets (the build stage is cached between
# them); the tags are those the compose file's services use, so
# `docker-compose -f compose/docker-compose.yml up -d --no-build` runs them.
root="$(cd "$here/.." && pwd)"
docker build -q -f "$here/Dockerfile" --target node --network host \
  --build-arg BASE=ledgerkeep/debian:bookworm --build-arg JOBS="$JOBS" -t ledgerkeep:local "$root"
say "node image built; the backup server image (same build stage)"
docker build -q -f "$here/Dockerfile" --target backup-server --network host \
  --build-arg BASE=ledgerkeep/debian:bookworm --build-arg JOBS="$JOBS" -t ledgerkeep-backup:local "$root"
docker build -q -f "$here/Dockerfile.prometheus" --network host -t ledgerkeep-prometheus:local "$here"
docker run --rm --network none --entrypoint /usr/local/bin/ledgerkeep ledgerkeep:local --help | head -n 1
say "built from source: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^ledgerkeep' | tr '\n' ' ')"
