#!/usr/bin/env bash
# Core benchmark: batch-enqueue N noop jobs (two queues, interleaved priorities), drain them with
# one `jobrouter work` process at the warning log level and again at info (one line per job,
# written to /dev/null), timed from the first claim to empty by a poller on one persistent
# connection (scripts/drain-timer.py), and print jobs/s, each as a ratio to the "ceiling" measured in the same
# run (`redis-benchmark -t lpop -c 10`), the worker's and Redis' CPU per job, and the worker's
# peak RSS. A script that prints figures, not a test.
#   scripts/bench-core.sh [N] [CONCURRENCY]     (defaults: 200000 jobs, concurrency 64)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-200000}
CONCURRENCY=${2:-64}
ensure_packages "${JOBROUTER_PACKAGES[@]}"

log "building (release)"
build_jobrouter release >/dev/null

run_dir=$(mktemp -d /tmp/jobrouter-bench.XXXXXX)
trap 'stop_redis; [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"

cat > "$run_dir/queues.toml" <<TOML
default_queue = "bench:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[types.ping]
handler = "noop"
priorities = { high = "bench:high", low = "bench:low" }
default_priority = "low"
[groups.bench]
queues = ["bench:high", "bench:low"]
concurrency = $CONCURRENCY
TOML

python3 - "$N" > "$run_dir/jobs.ndjson" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    out.write('{"type":"ping","priority":"%s","payload":{"n":%d}}\n' % ("high" if i % 4 == 0 else "low", i))
PY

now() { date +%s.%N; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # CPU time in clock ticks (10 ms)

log "ceiling: redis-benchmark -t lpop -c 10"
ceiling=$(lpop_ceiling "$N")
redis-cli -p "$REDIS_PORT" flushall >/dev/null

results=()
for level in warning info; do
  log "enqueue $N jobs with --batch"
  t0=$(now)
  "$BIN" enqueue --config "$run_dir/queues.toml" --batch "$run_dir/jobs.ndjson" 2>"$run_dir/enqueue.log"
  t1=$(now)
  depth=$(( $(redis-cli -p "$REDIS_PORT" llen bench:high) + $(redis-cli -p "$REDIS_PORT" llen bench:low) ))
  [ "$depth" -eq "$N" ] || { echo "expected $N queued jobs, found $depth" >&2; exit 1; }

  log "drain with one worker process (concurrency $CONCURRENCY, log level $level)"
  # Timed from the first claim to empty by a poller on one persistent connection (start-up excluded).
  python3 scripts/drain-timer.py "$REDIS_PORT" jobrouter:inflight bench:high bench:low > "$run_dir/timer" &
  TIMER=$!
  redis_before=$(ticks "$REDIS_PID")
  "$BIN" work --config "$run_dir/queues.toml" --log-level "$level" >/dev/null 2>"$run_dir/work.err" &
  WORKER=$!
  wait "$TIMER"
  read -r t2 t3 < "$run_dir/timer"
  worker_ticks=$(ticks "$WORKER")
  redis_ticks=$(( $(ticks "$REDIS_PID") - redis_before ))
  rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$WORKER/status")
  kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  results+=("$level $t0 $t1 $t2 $t3 $worker_ticks $redis_ticks $rss_kb")
done

python3 - "$N" "$CONCURRENCY" "$ceiling" "${results[@]}" <<'PY'
import sys
n, c, ceiling = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
print(f"jobs                 {n}, concurrency {c}")
print(f"ceiling              {ceiling:,.0f} LPOP/s (redis-benchmark -t lpop -c 10, this run)")
rates = {}
for row in sys.argv[4:]:
    level, t0, t1, t2, t3, worker, redis, rss = row.split()
    t0, t1, t2, t3 = map(float, (t0, t1, t2, t3))
    enqueue, drain = n / (t1 - t0), n / (t3 - t2)
    rates[level] = drain
    print(f"[{level:<7}] batch enqueue  {enqueue:>9,.0f} jobs/s  {enqueue / ceiling:.2f} x ceiling (whole command incl. start-up)")
    print(f"[{level:<7}] drain          {drain:>9,.0f} jobs/s  {drain / ceiling:.2f} x ceiling ({t3 - t2:.2f} s, first claim to empty)")
    print(f"[{level:<7}] CPU per job    worker {int(worker) * 1e4 / n:.1f} µs + Redis {int(redis) * 1e4 / n:.1f} µs")
    print(f"[{level:<7}] worker peak RSS {int(rss) / 1024:.1f} MiB")
print(f"info / warning       {rates['info'] / rates['warning'] * 100:.0f} % of the drain rate")
PY
