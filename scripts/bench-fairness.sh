#!/usr/bin/env bash
# Rate limits and fairness, driven from outside with real worker processes (#17's targets). Prints
# figures; it is not a test.
#   scripts/bench-fairness.sh [SECONDS] [STARVE_SECONDS]     (defaults: 60 and 120)
#
# 1. Keyed limits: a type limited to 50/s per tenant_id (burst 5); tenants a and b have a backlog,
#    and a third producer's jobs carry no tenant (not limited). 3 worker processes. Prints each
#    limited tenant's rate over SECONDS (measured from 10 s in, after the burst), and the unlimited
#    jobs' rate over the same window, against the same run with no limited jobs at all.
# 2. Deferral holds no slot: concurrency 8, one tenant's 5000 jobs all over a 10/s limit; probe
#    jobs of another tenant are enqueued one by one; their wait (enqueue → start) beside the
#    backlog and without it, from the worker's log.
# 3. Starvation: a group of 4 slots saturated by high jobs (exec, 50 ms) for STARVE_SECONDS, a low
#    job enqueued every 2 s; with max_wait = "30s" on low, the longest low wait; without it, how
#    many low jobs ran while high jobs waited.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SECONDS_RUN=${1:-60}
STARVE=${2:-120}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_release

run_dir=$(mktemp -d /tmp/jobrouter-fairness.XXXXXX)
WORKERS=()
stop_workers() {
  for pid in "${WORKERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${WORKERS[@]}"; do wait "$pid" 2>/dev/null || true; done
  WORKERS=()
}
trap 'stop_workers; stop_redis; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
R="redis-cli -p $REDIS_PORT"

write_config() {   # $1 file, $2 per-tenant limit, $3 concurrency, $4 extra group lines
  cat > "$1" <<TOML
default_queue = "fair:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[types.hook]
handler = "noop"
priorities = { normal = "fair:jobs", bulk = "fair:bulk" }
default_priority = "normal"
rate_limit = { key = "tenant_id", limit = "$2", burst = 5 }
[types.slow]
handler = "exec"
command = ["/bin/sleep", "0.05"]
priorities = { high = "starve:high", low = "starve:low" }
default_priority = "low"
[groups.fair]
queues = ["fair:jobs", "fair:bulk"]
concurrency = $3
[groups.starve]
queues = ["starve:high", "starve:low"]
concurrency = 4
$4
TOML
}

start_workers() {   # $1 config, $2 count, $3 group, $4 log prefix
  for i in $(seq 1 "$2"); do
    "$BIN" work --config "$1" --group "$3" --log-level "${LOG_LEVEL:-warning}" > "$run_dir/$4-$i.log" 2>&1 &
    WORKERS+=($!)
  done
}

# Jobs of each tenant still to run (queued, scheduled or in flight), counted inside Redis.
remaining() {
  $R eval "
    local counts = {}
    local function add(entry)
      local ok, job = pcall(cjson.decode, entry)
      local tenant = ok and type(job) == 'table' and type(job.payload) == 'table' and job.payload.tenant_id or '-'
      counts[tenant] = (counts[tenant] or 0) + 1
    end
    for _, e in ipairs(redis.call('LRANGE', 'fair:jobs', 0, -1)) do add(e) end
    for _, m in ipairs(redis.call('ZRANGE', 'jobrouter:scheduled', 0, -1)) do add(string.sub(m, string.find(m, '\n', 1, true) + 1)) end
    for _, r in ipairs(redis.call('HVALS', 'jobrouter:inflight')) do add(string.sub(r, string.find(r, '{', 1, true))) end
    return {counts['a'] or 0, counts['b'] or 0}" 0 | tr '\n' ' '
  echo
}

now() { date +%s.%N; }
bulk_jobs() { python3 -c "import sys
for i in range(int(sys.argv[1])): print('{\"type\":\"hook\",\"priority\":\"bulk\",\"payload\":{\"n\":%d}}' % i)" "$1"; }

# --- 1. keyed limits ---------------------------------------------------------------------------
# Enough unlimited jobs to last the whole window (about 25k/s with 3 workers here).
BULK=${BULK:-$(( (SECONDS_RUN + 15) * 25000 ))}
write_config "$run_dir/q.toml" "50/s" 8 ""
bulk_jobs "$BULK" > "$run_dir/bulk.ndjson"
python3 -c "
for i in range(int(($SECONDS_RUN + 20) * 50 * 1.3)):
    for t in 'ab': print('{\"type\":\"hook\",\"payload\":{\"tenant_id\":\"%s\",\"n\":%d}}' % (t, i))" > "$run_dir/tenants.ndjson"

# Starts 3 workers; samples, 10 s in and SECONDS_RUN later: unlimited jobs left (fair:bulk) and
# each limited tenant's jobs left. Sets BULK_RATE, A_DONE, B_DONE, SPAN.
window() {
  local t0 t_start t_end l0 l1 a0 a1 b0 b1
  t0=$(now)
  start_workers "$run_dir/q.toml" 3 fair drain
  python3 -c "import time; time.sleep(max(0, $t0 + 10 - time.time()))"
  l0=$($R llen fair:bulk); read -r a0 b0 < <(remaining); t_start=$(now)
  python3 -c "import time; time.sleep(max(0, $t_start + $SECONDS_RUN - time.time()))"
  l1=$($R llen fair:bulk); read -r a1 b1 < <(remaining); t_end=$(now)
  [ "$l1" -gt 0 ] || echo "warning: the unlimited jobs ran out before the window ended; raise BULK" >&2
  SPAN=$(python3 -c "print($t_end - $t_start)")
  BULK_RATE=$(python3 -c "print(round(($l0 - $l1) / $SPAN))")
  A_DONE=$(( a0 - a1 )); B_DONE=$(( b0 - b1 ))
}

log "1. baseline: $BULK unlimited jobs, 3 workers, nothing else queued; rate over ${SECONDS_RUN}s from 10 s in"
"$BIN" enqueue --config "$run_dir/q.toml" --batch "$run_dir/bulk.ndjson" 2>/dev/null
window
stop_workers
base_rate=$BULK_RATE
$R flushall >/dev/null

log "1. the same beside tenants a and b, each with a backlog over 50/s"
"$BIN" enqueue --config "$run_dir/q.toml" --batch "$run_dir/tenants.ndjson" 2>/dev/null
"$BIN" enqueue --config "$run_dir/q.toml" --batch "$run_dir/bulk.ndjson" 2>/dev/null
window
deferred=$("$BIN" status --config "$run_dir/q.toml" --json | python3 -c "import json,sys; print(next(l['deferred'] for l in json.load(sys.stdin)['limiters'] if l['name'] == 'type:hook'))")
stop_workers
$R flushall >/dev/null
python3 - "$A_DONE" "$B_DONE" "$SPAN" "$base_rate" "$BULK_RATE" "$deferred" <<'PY'
import sys
a, b, span = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
base, mixed, deferred = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
for name, done in (("a", a), ("b", b)):
    rate = done / span
    print(f"tenant {name}: {done} jobs in {span:.1f}s = {rate:.2f}/s ({(rate / 50 - 1) * 100:+.1f}% of 50/s)")
print(f"unlimited jobs: {mixed}/s beside the limited tenants, {base}/s alone ({(mixed / base - 1) * 100:+.1f}%)")
print(f"jobs deferred (one script call each): {deferred}")
PY

# --- 2. deferral holds no slot -------------------------------------------------------------------
probe() {   # $1 label: prints p50/p99/max wait of 100 probe jobs of tenant c
  : > "$run_dir/probe-ids"
  for i in $(seq 1 100); do
    "$BIN" enqueue --config "$run_dir/q2.toml" hook --payload "{\"tenant_id\":\"c\",\"n\":$i}" | cut -d' ' -f1 >> "$run_dir/probe-ids"
    sleep 0.15   # tenant c stays under its own 10/s
  done
  sleep 1
  python3 - "$1" "$run_dir/probe-ids" "$run_dir"/probe-*.log <<'PY'
import re, sys
label, ids = sys.argv[1], set(open(sys.argv[2]).read().split())
waits = []
def seconds(text):
    if text.endswith("ms"): return float(text[:-2]) / 1000
    if text.endswith("s") and "m" not in text: return float(text[:-1])
    m = re.match(r"(\d+)m(\d+)s", text)
    return int(m.group(1)) * 60 + int(m.group(2))
for path in sys.argv[3:]:
    for line in open(path):
        m = re.search(r"job=(\S+) .* wait=(\S+) .*outcome=ok", line)
        if m and m.group(1) in ids: waits.append(seconds(m.group(2)))
waits.sort()
if not waits: print(f"{label}: no probe job ran"); sys.exit()
p = lambda q: waits[min(len(waits) - 1, int(q * len(waits)))] * 1000
print(f"{label}: {len(waits)} probe jobs, wait p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {waits[-1] * 1000:.1f} ms")
PY
}
write_config "$run_dir/q2.toml" "10/s" 8 ""
log "2. probe jobs of tenant c, with no backlog"
LOG_LEVEL=info start_workers "$run_dir/q2.toml" 1 fair probe
sleep 1
probe "no backlog"
stop_workers
rm -f "$run_dir"/probe-*.log
$R flushall >/dev/null
log "2. the same beside tenant a's 5000 jobs, all over its 10/s limit (concurrency 8)"
python3 -c "
for i in range(5000): print('{\"type\":\"hook\",\"payload\":{\"tenant_id\":\"a\",\"n\":%d}}' % i)" > "$run_dir/noisy.ndjson"
"$BIN" enqueue --config "$run_dir/q2.toml" --batch "$run_dir/noisy.ndjson" 2>/dev/null
LOG_LEVEL=info start_workers "$run_dir/q2.toml" 1 fair probe
sleep 3
probe "beside a backlog over its limit"
stop_workers
$R flushall >/dev/null

# --- 3. starvation -------------------------------------------------------------------------------
starve() {   # $1 label, $2 extra group lines
  write_config "$run_dir/q3.toml" "50/s" 8 "$2"
  python3 -c "
for i in range(int($STARVE * 80 * 1.5)): print('{\"type\":\"slow\",\"priority\":\"high\"}')" > "$run_dir/high.ndjson"
  "$BIN" enqueue --config "$run_dir/q3.toml" --batch "$run_dir/high.ndjson" 2>/dev/null
  LOG_LEVEL=info start_workers "$run_dir/q3.toml" 1 starve starve
  local end=$(( $(date +%s) + STARVE ))
  : > "$run_dir/low-ids"
  while [ "$(date +%s)" -lt "$end" ]; do
    "$BIN" enqueue --config "$run_dir/q3.toml" slow --priority low | cut -d' ' -f1 >> "$run_dir/low-ids"
    sleep 2
  done
  local high_left
  high_left=$($R llen starve:high)
  stop_workers
  python3 - "$1" "$run_dir/low-ids" "$high_left" "$run_dir"/starve-*.log <<'PY'
import re, sys
label, ids, high_left = sys.argv[1], set(open(sys.argv[2]).read().split()), int(sys.argv[3])
waits = []
for path in sys.argv[4:]:
    for line in open(path):
        m = re.search(r"job=(\S+) .* wait=(\S+) .*outcome=ok", line)
        if m and m.group(1) in ids:
            t = m.group(2)
            waits.append(float(t[:-2]) / 1000 if t.endswith("ms") else float(t[:-1]) if t.endswith("s") and "m" not in t else 9999)
print(f"{label}: {len(ids)} low jobs enqueued, {len(waits)} ran while high jobs still waited ({high_left} left at the end)"
      + (f"; longest low wait {max(waits):.1f}s" if waits else ""))
PY
  rm -f "$run_dir"/starve-*.log
  $R flushall >/dev/null
}
log "3. starvation: 4 slots saturated by high jobs for ${STARVE}s, a low job every 2 s"
starve "max_wait = 30s on low" 'max_wait = { "starve:low" = "30s" }'
starve "no max_wait" ""
