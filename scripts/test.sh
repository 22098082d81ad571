#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a private redis-server and an SMTP sink on
# free loopback ports with their own data, builds, runs `swift test`, and stops them.
# Extra arguments go to `swift test` (e.g. --filter Routing).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages "${JOBROUTER_PACKAGES[@]}"
command -v swift >/dev/null || { echo "swift is not on PATH" >&2; exit 1; }

run_dir=$(mktemp -d /tmp/jobrouter-test.XXXXXX)
trap 'stop_redis; stop_smtp_sink; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
log "redis-server on 127.0.0.1:$REDIS_PORT"
start_smtp_sink "$run_dir/mail.jsonl"
log "SMTP sink on 127.0.0.1:$SMTP_PORT"

export JOBROUTER_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export JOBROUTER_TEST_REDIS_SERVER="$(command -v redis-server)"
export JOBROUTER_TEST_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
export JOBROUTER_TEST_SMTP_LOG="$run_dir/mail.jsonl"
unset JOBROUTER_REDIS_URL JOBROUTER_CONFIG

log "building"
swift build --build-tests
export JOBROUTER_BINARY="$(swift build --show-bin-path)/jobrouter"
log "testing"
swift test --skip-build "$@"
