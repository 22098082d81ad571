#!/usr/bin/env bash
# Core benchmark: batch-enqueue N noop jobs, drain them with one `jobrouter work` process, and print
# enqueue jobs/s, drain jobs/s and the worker's peak RSS. A script that prints figures, not a test.
#   scripts/bench-core.sh [N] [CONCURRENCY]     (defaults: 200000 jobs, concurrency 64)
# Set LOG_LEVEL=info to include the cost of one log line per job (written to /dev/null).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-200000}
CONCURRENCY=${2:-64}
LOG_LEVEL=${LOG_LEVEL:-warning}
ensure_packages "${JOBROUTER_PACKAGES[@]}"

log "building (release)"
swift build -c release --product jobrouter >/dev/null
BIN="$(swift build -c release --show-bin-path)/jobrouter"

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
log "enqueue $N jobs with --batch"
t0=$(now)
"$BIN" enqueue --config "$run_dir/queues.toml" --batch "$run_dir/jobs.ndjson" 2>"$run_dir/enqueue.log"
t1=$(now)
depth=$(( $(redis-cli -p "$REDIS_PORT" llen bench:high) + $(redis-cli -p "$REDIS_PORT" llen bench:low) ))
[ "$depth" -eq "$N" ] || { echo "expected $N queued jobs, found $depth" >&2; exit 1; }

log "drain with one worker process (concurrency $CONCURRENCY, log level $LOG_LEVEL)"
t2=$(now)
"$BIN" work --config "$run_dir/queues.toml" --log-level "$LOG_LEVEL" >/dev/null 2>"$run_dir/work.err" &
WORKER=$!
while [ "$(redis-cli -p "$REDIS_PORT" eval "return redis.call('llen','bench:high') + redis.call('llen','bench:low')" 0)" != "0" ]; do
  sleep 0.01
done
t3=$(now)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$WORKER/status")
kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""

python3 - "$N" "$t0" "$t1" "$t2" "$t3" "$rss_kb" "$CONCURRENCY" "$LOG_LEVEL" <<'PY'
import sys
n, t0, t1, t2, t3, rss, c, level = int(sys.argv[1]), *map(float, sys.argv[2:6]), int(sys.argv[6]), sys.argv[7], sys.argv[8]
print(f"jobs                 {n}")
print(f"batch enqueue        {n / (t1 - t0):,.0f} jobs/s  ({t1 - t0:.2f} s, whole command incl. start-up)")
print(f"drain (1 process)    {n / (t3 - t2):,.0f} jobs/s  ({t3 - t2:.2f} s incl. start-up; concurrency {c}; log level {level})")
print(f"worker peak RSS      {rss / 1024:.1f} MiB")
PY
