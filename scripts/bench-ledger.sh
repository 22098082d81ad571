#!/usr/bin/env bash
# Ledger cost: drains N noop jobs with one `jobrouter work` process, ledger off and ledger on
# (PostgreSQL), at concurrency 10 and 64, alternating, ROUNDS times, all in the same run, and
# prints jobs/s for each (the median of the rounds, and every round), the ratio of the medians,
# how long after the drain the ledger had every attempt stored, and the CPU per job of the worker,
# Redis and PostgreSQL (medians; up to the moment the ledger held every attempt, so its catching
# up counts). Prints figures; not a test.
#
# A third drain each round measures PostgreSQL's share alone: the ledger off, while `psql` copies
# the rows the ledger-on drain stored (binary `COPY` of 4,000 rows at a time, one session) as the
# drain takes their jobs (scripts/copy-with-drain.py). The worker and Redis do no ledger work
# then; only the inserts take their part of the two cores. Its ratio is about the most any ledger
# design could keep here.
#
# Also prints each drain's ratio to the ceiling bench-core uses (`redis-benchmark -t lpop -c 10`,
# measured once at the start), so the drains with the ledger on compare with #12's drain targets.
#   scripts/bench-ledger.sh [N] [ROUNDS]     (default 100000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-100000}
ROUNDS=${2:-3}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_release

run_dir=$(mktemp -d /tmp/jobrouter-bench-ledger.XXXXXX)
trap 'stop_redis; stop_postgres; [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
start_postgres "$run_dir/postgres"
PG_URL="postgres://postgres@127.0.0.1:$POSTGRES_PORT/jobrouter"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
psql_count() { "$POSTGRES_BIN/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d jobrouter -Atc "$1"; }

write_ping_jobs "$N" "$run_dir/jobs.ndjson"
log "ceiling: redis-benchmark -t lpop -c 10"
ceiling=$(lpop_ceiling "$N")

write_config() {  # $1 concurrency, $2 ledger (true/false)
  cat > "$run_dir/queues.toml" <<TOML
default_queue = "bench:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[postgres]
url = "$PG_URL"
ledger = $2
[types.ping]
handler = "noop"
[groups.bench]
queues = ["bench:default"]
concurrency = $1
TOML
}
write_config 10 true
"$BIN" migrate --config "$run_dir/queues.toml" >/dev/null

now() { date +%s.%N; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }   # CPU time in clock ticks (10 ms)
# The server's processes (the postmaster and its children, the backends the shipper writes through
# among them): backends that ended in between are not counted (only this script's own queries).
postgres_ticks() {
  local postmaster total=0 pid
  postmaster=$(head -1 "$POSTGRES_DIR/data/postmaster.pid")
  for pid in "$postmaster" $(ps --ppid "$postmaster" -o pid=); do total=$(( total + $(ticks "$pid") )); done
  echo "$total"
}
# Splits a binary COPY file into files of at most 4,000 rows each (header, rows, trailer).
split_copy() {  # $1 file, $2 directory
  python3 - "$1" "$2" <<'PY'
import struct, sys
data = open(sys.argv[1], 'rb').read()
header_end = 19 + struct.unpack('>i', data[15:19])[0]
header, at, rows, part = data[:header_end], header_end, [], 0
def flush():
    global rows, part
    if rows:
        open(f"{sys.argv[2]}/part{part:05d}.bin", 'wb').write(header + b''.join(rows) + b'\xff\xff')
        part += 1
        rows = []
while True:
    fields = struct.unpack('>h', data[at:at + 2])[0]
    if fields == -1:
        break
    start, at = at, at + 2
    for _ in range(fields):
        length = struct.unpack('>i', data[at:at + 4])[0]
        at += 4 + max(length, 0)
    rows.append(data[start:at])
    if len(rows) == 4000:
        flush()
flush()
PY
}

results=()
for round in $(seq 1 "$ROUNDS"); do
for concurrency in 10 64; do
  for ledger in false true inserts; do
    if [ "$ledger" = inserts ]; then
      # The rows the ledger-on drain just stored, to be copied again during a ledger-off drain.
      rm -rf "$run_dir/rows"; mkdir -p "$run_dir/rows"
      "$POSTGRES_BIN/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d jobrouter -q \
        -c "\\copy jobrouter.attempts TO '$run_dir/rows/all.bin' (FORMAT binary)"
      split_copy "$run_dir/rows/all.bin" "$run_dir/rows"
      rm "$run_dir/rows/all.bin"
      write_config "$concurrency" false
    else
      write_config "$concurrency" "$ledger"
    fi
    rcli flushall >/dev/null
    psql_count "TRUNCATE jobrouter.attempts" >/dev/null
    "$BIN" enqueue --config "$run_dir/queues.toml" --batch "$run_dir/jobs.ndjson" >/dev/null 2>&1
    log "round $round: drain $N jobs, concurrency $concurrency, ledger $ledger"
    # Timed from the first claim to empty over one persistent connection (start-up excluded).
    python3 scripts/drain-timer.py "$REDIS_PORT" jobrouter:inflight bench:default > "$run_dir/timer" &
    TIMER=$!
    redis_before=$(ticks "$REDIS_PID")
    postgres_before=$(postgres_ticks)
    "$BIN" work --config "$run_dir/queues.toml" --log-level warning >/dev/null 2>"$run_dir/work.err" &
    WORKER=$!
    if [ "$ledger" = inserts ]; then
      python3 scripts/copy-with-drain.py "$REDIS_PORT" bench:default "$N" "$run_dir/rows" \
        "$POSTGRES_BIN/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres -d jobrouter -q -v ON_ERROR_STOP=1 >/dev/null &
      COPIER=$!
    fi
    wait "$TIMER"
    read -r t0 t1 < "$run_dir/timer"
    t2=$t1
    if [ "$ledger" = inserts ]; then
      wait "$COPIER"
      t2=$(now)   # how long after the drain the copies ended
      log "copies: $(psql_count 'SELECT count(*) FROM jobrouter.attempts') rows"
    fi
    if [ "$ledger" = true ]; then
      while [ "$(psql_count 'SELECT count(*) FROM jobrouter.attempts')" -lt "$N" ]; do sleep 0.05; done
      t2=$(now)
      rows=$(psql_count "SELECT count(*) || ' rows, ' || count(DISTINCT job_id) || ' jobs' FROM jobrouter.attempts")
      log "ledger: $rows"
    fi
    worker_ticks=$(ticks "$WORKER")
    redis_ticks=$(( $(ticks "$REDIS_PID") - redis_before ))
    postgres_ticks=$(( $(postgres_ticks) - postgres_before ))
    kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
    results+=("$concurrency $ledger $t0 $t1 $t2 $worker_ticks $redis_ticks $postgres_ticks")
  done
done
done

python3 - "$N" "$ceiling" "${results[@]}" <<'PY'
import statistics, sys
n, ceiling = int(sys.argv[1]), float(sys.argv[2])
rates, lags, cpu = {}, {}, {}
for row in sys.argv[3:]:
    c, ledger, t0, t1, t2, worker, redis, postgres = row.split()
    t0, t1, t2 = float(t0), float(t1), float(t2)
    rates.setdefault((c, ledger), []).append(n / (t1 - t0))
    lags.setdefault((c, ledger), []).append(t2 - t1)
    # Clock ticks (10 ms) to µs per job.
    cpu.setdefault((c, ledger), []).append(tuple(int(ticks) * 1e4 / n for ticks in (worker, redis, postgres)))
names = {"false": "ledger off", "true": "ledger on ", "inserts": "inserts   "}
for (c, ledger), values in sorted(rates.items()):
    extra = ""
    if ledger == "true":
        extra = f"; every attempt in PostgreSQL at most {max(lags[(c, ledger)]):.2f} s after the drain"
    elif ledger == "inserts":
        extra = f"; the copies ended {', '.join(f'{lag:.2f}' for lag in lags[(c, ledger)])} s after the drain"
    print(f"concurrency {c:>2}  {names[ledger]}  drain {statistics.median(values):>8,.0f} jobs/s  (median of {len(values)}: {', '.join(f'{v:,.0f}' for v in values)}){extra}")
for (c, ledger), values in sorted(cpu.items()):
    if ledger == "inserts":
        continue  # the copying session's backend has ended: its CPU is not counted
    worker, redis, postgres = (statistics.median(v[i] for v in values) for i in range(3))
    print(f"concurrency {c:>2}  {names[ledger]}  CPU per job  worker {worker:.1f} + Redis {redis:.1f} + PostgreSQL {postgres:.1f} = {worker + redis + postgres:.1f} µs (medians)")
for c in ("10", "64"):
    off = statistics.median(rates[(c, 'false')])
    print(f"concurrency {c:>2}  ledger on / off (medians): {statistics.median(rates[(c, 'true')]) / off * 100:.0f} %;"
          f" PostgreSQL's inserts alone / off: {statistics.median(rates[(c, 'inserts')]) / off * 100:.0f} %")
print(f"ceiling         {ceiling:,.0f} LPOP/s (redis-benchmark -t lpop -c 10, this run)")
for c in ("10", "64"):
    print(f"concurrency {c:>2}  drains / ceiling (medians): ledger off {statistics.median(rates[(c, 'false')]) / ceiling:.2f} x,"
          f" ledger on {statistics.median(rates[(c, 'true')]) / ceiling:.2f} x")
PY
