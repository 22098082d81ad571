#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a private redis-server on a free loopback
# port with its own data dir, builds, runs `swift test`, and stops the server.
# Extra arguments go to `swift test` (e.g. --filter Routing).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages "${JOBROUTER_PACKAGES[@]}"
command -v swift >/dev/null || { echo "swift is not on PATH" >&2; exit 1; }

run_dir=$(mktemp -d /tmp/jobrouter-test.XXXXXX)
trap 'stop_redis; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
log "redis-server on 127.0.0.1:$REDIS_PORT"

export JOBROUTER_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export JOBROUTER_TEST_REDIS_SERVER="$(command -v redis-server)"
unset JOBROUTER_REDIS_URL JOBROUTER_CONFIG

log "building"
swift build --build-tests
export JOBROUTER_BINARY="$(swift build --show-bin-path)/jobrouter"
log "testing"
swift test --skip-build "$@"
