#!/usr/bin/env bash
# Retry lateness: how long after its due time a retry starts. N `exec` jobs that fail their first
# attempt (backoff 20 ms), enqueued one by one 50 ms apart so none waits behind a backlog; prints
# p50/p95/p99/max of attempt 2's wait, which the worker's log line counts from the retry's due
# time. Prints figures; not a test.
#   scripts/bench-retry.sh [N]     (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-100}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_release

run_dir=$(mktemp -d /tmp/jobrouter-bench-retry.XXXXXX)
trap 'stop_redis; [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"

cat > "$run_dir/fail-once.sh" <<'S'
#!/bin/sh
[ "$JOB_ATTEMPT" -ge 2 ] || exit 1
S
chmod +x "$run_dir/fail-once.sh"
cat > "$run_dir/queues.toml" <<TOML
default_queue = "bench:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[types.flaky]
handler = "exec"
command = ["$run_dir/fail-once.sh"]
backoff = { base = "20ms", max = "20ms" }
[groups.bench]
queues = ["bench:default"]
concurrency = 8
TOML

"$BIN" work --config "$run_dir/queues.toml" > "$run_dir/work.log" 2>&1 &
WORKER=$!
sleep 0.5
log "enqueue $N jobs, 50 ms apart; each fails once"
for i in $(seq 1 "$N"); do
  "$BIN" enqueue --config "$run_dir/queues.toml" flaky --payload "{\"n\":$i}" >/dev/null
  sleep 0.05
done
deadline=$((SECONDS + 60))
while [ "$(grep -c 'attempt=2 .*outcome=ok' "$run_dir/work.log" || true)" -lt "$N" ]; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "retries did not all finish; see the log:" >&2; tail -5 "$run_dir/work.log" >&2; exit 1; }
  sleep 0.2
done
kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
grep 'attempt=2 .*outcome=ok' "$run_dir/work.log" | python3 -c '
import re, sys
units = {"µs": 0.001, "ms": 1.0, "s": 1000.0}
waits = sorted(float(m.group(1)) * units[m.group(2)] for m in (re.search(r" wait=([0-9.]+)(µs|ms|s) ", line) for line in sys.stdin) if m)
at = lambda p: waits[min(len(waits) - 1, int(p * len(waits)))]
print(f"retries {len(waits)}: started after their due time p50 {at(.5):.1f} ms, p95 {at(.95):.1f}, p99 {at(.99):.1f}, max {waits[-1]:.1f}")
'
