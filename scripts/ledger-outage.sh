#!/usr/bin/env bash
# The ledger through a PostgreSQL outage, by hand: 20,000 exec jobs drain while PostgreSQL is paused
# (SIGSTOP) for 60 s, then 5,000 more while it is stopped (pg_ctl stop) for 60 s; prints what Redis
# holds meanwhile and, at the end, rows vs jobs. Takes about 3 minutes. Prints figures; not a test.
set -euo pipefail
cd "$(dirname "$0")/.."; source scripts/lib.sh
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_jobrouter debug
d=$(mktemp -d /tmp/jobrouter-outage.XXXXXX); start_redis $d/r >/dev/null; start_postgres $d/pg
trap 'stop_redis; stop_postgres; kill -9 ${W:-} 2>/dev/null; rm -rf "$d"' EXIT
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cat > $d/q.toml <<T
default_queue = "t:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[postgres]
url = "postgres://postgres@127.0.0.1:$POSTGRES_PORT/jobrouter"
[types.work]
handler = "exec"
command = ["sh", "-c", "sleep 0.02"]
[groups.g]
queues = ["t:default"]
concurrency = 16
T
$BIN migrate --config $d/q.toml >/dev/null
python3 -c '
for i in range(20000): print("{\"type\":\"work\",\"payload\":{\"n\":%d}}" % i)' | $BIN enqueue --config $d/q.toml --batch - >/dev/null 2>&1
$BIN work --config $d/q.toml --log-level warning > $d/work.log 2>&1 & W=$!
rows() { "$POSTGRES_BIN/psql" -h 127.0.0.1 -p $POSTGRES_PORT -U postgres -d jobrouter -Atc "$1" 2>/dev/null || echo "?"; }
sleep 5; echo "before: rows $(rows 'select count(*) from jobrouter.attempts') queue $(redis-cli -p $REDIS_PORT llen t:default)"
PM=$(head -1 $d/pg/data/postmaster.pid); PIDS="$PM $(pgrep -P $PM | tr '\n' ' ')"
kill -STOP $PIDS; echo "SIGSTOP postgres for 60 s"; sleep 60
echo "after 60 s paused: queue $(redis-cli -p $REDIS_PORT llen t:default), waiting records $(redis-cli -p $REDIS_PORT get jobrouter:events:records)"
kill -CONT $PIDS; sleep 5; echo "resumed: rows $(rows 'select count(*) from jobrouter.attempts')"
as_pg $POSTGRES_BIN/pg_ctl -D $d/pg/data -m fast -w stop >/dev/null; echo "postgres stopped (pg_ctl stop) for 60 s"
python3 -c '
for i in range(5000): print("{\"type\":\"work\",\"payload\":{\"m\":%d}}" % i)' | $BIN enqueue --config $d/q.toml --batch - >/dev/null 2>&1
sleep 60; echo "after 60 s down: queue $(redis-cli -p $REDIS_PORT llen t:default), waiting records $(redis-cli -p $REDIS_PORT get jobrouter:events:records)"
$BIN status --config $d/q.toml | tail -1
as_pg $POSTGRES_BIN/pg_ctl -D $d/pg/data -l $d/pg/postgres.log -w -o "-c listen_addresses=127.0.0.1 -p $POSTGRES_PORT -k $d/pg -c fsync=off" start >/dev/null
for i in $(seq 1 60); do [ "$(rows 'select count(*) from jobrouter.attempts')" = "25000" ] && break; sleep 1; done
echo "final: $(rows "select count(*) || ' rows, ' || count(distinct job_id) || ' jobs, ' || count(*) filter (where outcome='succeeded') || ' succeeded' from jobrouter.attempts")"
grep "ledger" $d/work.log | cut -c1-200 | head -4 || true
