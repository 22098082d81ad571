#!/usr/bin/env bash
# The outbox, measured and tried against a private Redis and PostgreSQL 15 (release build).
# Prints figures; not a test (the behaviour is tested in Tests/JobRouterPostgresTests/OutboxTests.swift).
#   1. relay throughput: N rows committed, then `jobrouter relay --once` timed (rows/s into Redis);
#   2. latency on an idle system: one job per transaction from one psql session, `work` relaying (LISTEN/NOTIFY,
#      poll 1 s) with the ledger on: commit -> handler start, p50/p99 over LAT jobs;
#   3. kill -9 loop: 4 psql clients commit CHAOS rows (20 per transaction) while `jobrouter relay`
#      is SIGKILLed every 0.5-2 s and restarted; then every committed id must be in Redis once.
#   scripts/bench-outbox.sh [N] [LAT] [CHAOS]     (default 100000 200 50000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-100000}
LAT=${2:-200}
CHAOS=${3:-50000}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_release

run_dir=$(mktemp -d /tmp/jobrouter-bench-outbox.XXXXXX)
cleanup() {
  [ -n "${RELAY:-}" ] && kill -9 "$RELAY" 2>/dev/null
  [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null
  stop_redis; stop_postgres; rm -rf "$run_dir"
}
trap cleanup EXIT
start_redis "$run_dir/redis"
start_postgres "$run_dir/pg"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
sql() { psql -q -X -At -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres jobrouter -v ON_ERROR_STOP=1 "$@"; }
export JOBROUTER_POSTGRES_URL="postgres://postgres@127.0.0.1:$POSTGRES_PORT/jobrouter"

cat > "$run_dir/queues.toml" <<TOML
default_queue = "bench:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[postgres]
url = "postgres://postgres@127.0.0.1:$POSTGRES_PORT/jobrouter"
outbox = true
[types.ping]
handler = "noop"
[groups.bench]
queues = ["bench:default"]
concurrency = 10
TOML
"$BIN" migrate --config "$run_dir/queues.toml" >/dev/null
now() { date +%s.%N; }

log "1. relay throughput: $N rows committed, then relay --once"
sql -c "SELECT count(jobrouter.enqueue('ping', jsonb_build_object('n', n))) FROM generate_series(1, $N) AS n" >/dev/null
t0=$(now)
"$BIN" relay --once --config "$run_dir/queues.toml" --log-level warning
t1=$(now)
queued=$(rcli llen bench:default)
python3 -c "print(f'relay throughput     {$N / ($t1 - $t0):,.0f} rows/s into Redis ({$t1 - $t0:.2f} s, whole command incl. start-up; {$queued} queued)')"
rcli flushall >/dev/null

log "2. commit -> handler start, $LAT jobs one transaction each, idle system"
"$BIN" work --config "$run_dir/queues.toml" --log-level warning >/dev/null 2>"$run_dir/work.err" &
WORKER=$!
sleep 2
# One client session, as an application keeps one (a new psql process per job would measure
# process start-up and backend forks on these 2 cores); each statement commits on its own.
for i in $(seq 1 "$LAT"); do
  echo "SELECT jobrouter.enqueue('ping', jsonb_build_object('committed', extract(epoch FROM clock_timestamp())));"
  echo "SELECT pg_sleep(0.02);"
done | sql >/dev/null
for _ in $(seq 1 100); do
  [ "$(sql -c "SELECT count(*) FROM jobrouter.attempts WHERE payload ? 'committed'")" = "$LAT" ] && break
  sleep 0.1
done
sql -c "SELECT extract(epoch FROM started_at) - (payload->>'committed')::float8 FROM jobrouter.attempts WHERE payload ? 'committed'" \
  | python3 -c '
import statistics, sys
values = sorted(float(line) * 1000 for line in sys.stdin if line.strip())
if not values: sys.exit("no jobs ran")
p = lambda q: values[min(len(values) - 1, int(q * len(values)))]
print(f"commit -> start      p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {values[-1]:.1f} ms over {len(values)} jobs (LISTEN/NOTIFY; poll 1 s)")'
kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
rcli flushall >/dev/null

log "3. kill -9 loop: 4 clients commit $CHAOS rows while the relay is SIGKILLed every 0.5-2 s"
per_client=$((CHAOS / 4))
clients=()
for c in 1 2 3 4; do
  (
    for start in $(seq 1 20 "$per_client"); do
      sql -c "SELECT count(jobrouter.enqueue('ping', jsonb_build_object('c', $c, 'n', n))) FROM generate_series($start, $((start + 19 < per_client ? start + 19 : per_client))) AS n" >/dev/null
    done
  ) &
  clients+=($!)
done
kills=0
while kill -0 "${clients[@]}" 2>/dev/null; do
  "$BIN" relay --config "$run_dir/queues.toml" --log-level warning >>"$run_dir/relay.log" 2>&1 &
  RELAY=$!
  sleep "$(python3 -c 'import random; print(random.uniform(0.5, 2))')"
  kill -9 "$RELAY" 2>/dev/null || true; wait "$RELAY" 2>/dev/null || true; RELAY=""
  kills=$((kills + 1))
done
wait "${clients[@]}"
"$BIN" relay --once --config "$run_dir/queues.toml" --log-level warning
rcli --raw lrange bench:default 0 -1 | python3 -c "
import json, sys
ids = [json.loads(line)['id'] for line in sys.stdin if line.strip()]
committed = $CHAOS
print(f'kill -9 loop         {len(ids)} jobs in Redis for {committed} committed rows, {len(set(ids))} distinct ids, '
      f'{len(ids) - len(set(ids))} pushed twice, {committed - len(set(ids))} missing; relay SIGKILLed $kills times')"
echo "outbox rows left     $(sql -c 'SELECT count(*) FROM jobrouter.outbox')"
