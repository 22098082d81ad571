#!/usr/bin/env bash
# Library-level figures beside the same run's ceiling (`redis-benchmark -t lpop -c 10`): bulk
# enqueue through JobRouterClient (one call for N jobs, first in the process, pipelined 16 script
# calls deep; calls of 10,000; one call again, the process warm), drains through JobRouterWorker
# with a registered Swift handler at concurrency 10 and 64, pickup latency from idle (enqueued_at
# -> handler start, 300 jobs 20 ms apart), and a drain of EXEC_N jobs with an `exec` handler
# (`true`) through the CLI. Prints figures.
#   scripts/bench-library.sh [N] [EXEC_N]     (default 100000 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-100000}
EXEC_N=${2:-20000}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_release
log "building (release): jobrouter-bench"
swift build -c release --product jobrouter-bench 2>&1 | grep -v "prohibited flag" | tail -1
BENCH="$(swift build -c release --show-bin-path)/jobrouter-bench"

run_dir=$(mktemp -d /tmp/jobrouter-bench-library.XXXXXX)
trap 'stop_redis; [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"

ceiling=$(lpop_ceiling 200000)
echo "ceiling                                   $ceiling LPOP/s"
"$BENCH" "redis://127.0.0.1:$REDIS_PORT/0" "$N" | while read -r line; do
  case "$line" in pickup*) echo "$line"; continue;; esac
  rate=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($(i + 1) == "jobs/s") print $i}')
  echo "$line  $(python3 -c "print(f'{$rate / $ceiling:.2f} x ceiling')")"
done

cat > "$run_dir/queues.toml" <<TOML
default_queue = "bench:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[types.ping]
handler = "exec"
command = ["true"]
[groups.bench]
queues = ["bench:default"]
concurrency = 64
TOML
write_ping_jobs "$EXEC_N" "$run_dir/jobs.ndjson"
"$BIN" enqueue --config "$run_dir/queues.toml" --batch "$run_dir/jobs.ndjson" >/dev/null 2>&1
t0=$(date +%s.%N)
"$BIN" work --config "$run_dir/queues.toml" --log-level warning >/dev/null 2>&1 &
WORKER=$!
while [ "$(redis-cli -p "$REDIS_PORT" eval "return redis.call('llen','bench:default') + redis.call('hlen','jobrouter:inflight')" 0)" != "0" ]; do sleep 0.01; done
t1=$(date +%s.%N)
kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
python3 -c "print(f'drain, exec handler (true), concurrency 64  {$EXEC_N / ($t1 - $t0):,.0f} jobs/s ({$t1 - $t0:.2f} s): one process spawned per job')"
