#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a private redis-server, a Redis Cluster (3
# primaries, 3 replicas), a Sentinel set (a primary, 2 replicas, 3 sentinels; the tests that kill
# primaries start sets of their own), PostgreSQL and SMTP sinks (one
# open, two requiring AUTH over STARTTLS and smtps with a private CA) on free loopback ports with
# their own data, builds, runs `swift test`, and stops them.
# Extra arguments go to `swift test` (e.g. --filter Routing).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages "${JOBROUTER_PACKAGES[@]}"
command -v swift >/dev/null || { echo "swift is not on PATH" >&2; exit 1; }

run_dir=$(mktemp -d /tmp/jobrouter-test.XXXXXX)
trap 'stop_redis_tls_tunnel; stop_redis; stop_redis_cluster; stop_sentinel_set; stop_smtp_sink; stop_postgres; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
log "redis-server on 127.0.0.1:$REDIS_PORT"
start_redis_cluster "$run_dir/cluster"
export JOBROUTER_TEST_CLUSTER_PORTS="$CLUSTER_PORTS"
log "redis cluster (3 primaries, 3 replicas) on 127.0.0.1 ports $CLUSTER_PORTS"
start_sentinel_set "$run_dir/sentinel"
export JOBROUTER_TEST_SENTINEL_URL="redis+sentinel://$(echo "$SENTINEL_PORTS" | sed 's/\([0-9]*\)/127.0.0.1:\1/g; s/ /,/g')/jobs/0"
log "sentinel set (a primary, 2 replicas, 3 sentinels): $JOBROUTER_TEST_SENTINEL_URL"
start_smtp_sink "$run_dir/mail.jsonl"
log "SMTP sink on 127.0.0.1:$SMTP_PORT"
export JOBROUTER_TEST_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
# Relays that require AUTH: over STARTTLS and over implicit TLS (smtps), with a private CA.
make_test_certificates "$run_dir/tls"
start_smtp_sink "$run_dir/starttls.jsonl" --auth "jobrouter:s3cret-pw" --cert "$run_dir/tls/server.pem" --key "$run_dir/tls/server.key"
export JOBROUTER_TEST_SMTP_STARTTLS_URL="smtp://127.0.0.1:$SMTP_PORT"
start_smtp_sink "$run_dir/smtps.jsonl" --auth "jobrouter:s3cret-pw" --cert "$run_dir/tls/server.pem" --key "$run_dir/tls/server.key" --implicit-tls
export JOBROUTER_TEST_SMTPS_URL="smtps://127.0.0.1:$SMTP_PORT"
export JOBROUTER_TEST_SMTP_AUTH_LOGS="$run_dir/starttls.jsonl:$run_dir/smtps.jsonl" JOBROUTER_TEST_SMTP_CA="$run_dir/tls/ca.pem"
log "AUTH relays: STARTTLS $JOBROUTER_TEST_SMTP_STARTTLS_URL, $JOBROUTER_TEST_SMTPS_URL"
start_postgres "$run_dir/postgres"
export JOBROUTER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$POSTGRES_PORT/jobrouter"
log "postgres on 127.0.0.1:$POSTGRES_PORT (data in $run_dir/postgres)"
# A second one that the ledger's outage test stops, pauses and restarts, so no other test sees it.
start_postgres "$run_dir/postgres-outage"
export JOBROUTER_TEST_POSTGRES_OUTAGE_URL="postgres://postgres@127.0.0.1:$POSTGRES_PORT/jobrouter"
export JOBROUTER_TEST_POSTGRES_OUTAGE_DATA="$run_dir/postgres-outage/data" JOBROUTER_TEST_POSTGRES_BIN="$POSTGRES_BIN"
log "postgres for the outage test on 127.0.0.1:$POSTGRES_PORT"
start_redis_tls_tunnel "$run_dir/tunnel" "$REDIS_PORT" "$run_dir/tls/ca.pem" "$run_dir/tls/server.pem" "$run_dir/tls/server.key"
export JOBROUTER_TEST_REDIS_TUNNEL_URL="redis://127.0.0.1:$REDIS_TUNNEL_PORT/0"
log "redis over TLS: 127.0.0.1:$REDIS_TLS_PORT, through a local stunnel at $JOBROUTER_TEST_REDIS_TUNNEL_URL"

export JOBROUTER_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export JOBROUTER_TEST_REDIS_SERVER="$(command -v redis-server)"
export JOBROUTER_TEST_SMTP_LOG="$run_dir/mail.jsonl"
unset JOBROUTER_REDIS_URL JOBROUTER_CONFIG JOBROUTER_POSTGRES_URL PGPASSWORD

log "building"
swift build --build-tests
export JOBROUTER_BINARY="$(swift build --show-bin-path)/jobrouter"
log "testing"
if [ $# -gt 0 ]; then
  swift test --skip-build "$@"
else
  # Headless Chromium, and the suites that spawn many processes (curl per request, relays killed
  # in a loop), take both cores for a while: they run after the rest, so they never slow the tests
  # that bound how long something takes.
  heavy="DashboardBrowserTests|DashboardTests|CLIOutboxTests|CLIWorkflowTests|CLIFairnessTests"
  swift test --skip-build --skip "$heavy"
  log "testing the dashboard (in headless Chromium too), the outbox and cron schedules through the binary"
  swift test --skip-build --filter "$heavy"
fi
