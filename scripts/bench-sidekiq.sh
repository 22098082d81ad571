#!/usr/bin/env bash
# JobRouter beside Sidekiq (Debian's ruby-sidekiq 6.4) on the same machine, the same private
# Redis, the same run: N no-op jobs drained by one process at concurrency C, each tool's
# bulk enqueue first. Prints jobs/s for each and the ratio. A script that prints figures.
#   scripts/bench-sidekiq.sh [N] [C]     (default 100000 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-100000}
C=${2:-10}
ensure_packages "${JOBROUTER_PACKAGES[@]}" ruby-sidekiq
build_release
run_dir=$(mktemp -d /tmp/jobrouter-bench-sidekiq.XXXXXX)
trap 'stop_redis; [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
now() { date +%s.%N; }

cat > "$run_dir/worker.rb" <<'RUBY'
require "sidekiq"
Sidekiq.configure_server { |config| config.logger.level = Logger::WARN }
class PingJob
  include Sidekiq::Worker
  def perform(n); end
end
RUBY
cat > "$run_dir/enqueue.rb" <<'RUBY'
require "sidekiq"
require_relative "worker"
n = Integer(ARGV[0])
(0...n).each_slice(1000) { |slice| Sidekiq::Client.push_bulk("class" => PingJob, "args" => slice.map { |i| [i] }) }
RUBY
cat > "$run_dir/queues.toml" <<TOML
default_queue = "bench:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[types.ping]
handler = "noop"
[groups.bench]
queues = ["bench:default"]
concurrency = $C
TOML
write_ping_jobs "$N" "$run_dir/jobs.ndjson"

results=()
for round in 1 2; do
  log "round $round: Sidekiq, $N jobs, concurrency $C"
  rcli flushall >/dev/null
  t0=$(now); ruby "$run_dir/enqueue.rb" "$N" 2>/dev/null; t1=$(now)   # (redis-rb deprecation notices)
  sidekiq -r "$run_dir/worker.rb" -c "$C" -q default >/dev/null 2>&1 &
  WORKER=$!
  t2=$(now)
  while [ "$(rcli llen queue:default)" != "0" ]; do sleep 0.01; done
  # Jobs taken but still running: wait until Sidekiq reports none busy.
  while [ "$(rcli eval "local n = 0 for _, p in ipairs(redis.call('smembers', 'processes')) do n = n + tonumber(redis.call('hget', p, 'busy') or '0') end return n" 0)" != "0" ]; do sleep 0.01; done
  t3=$(now)
  kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
  results+=("sidekiq $t0 $t1 $t2 $t3")

  log "round $round: JobRouter, $N jobs, concurrency $C"
  rcli flushall >/dev/null
  t0=$(now); "$BIN" enqueue --config "$run_dir/queues.toml" --batch "$run_dir/jobs.ndjson" >/dev/null 2>&1; t1=$(now)
  "$BIN" work --config "$run_dir/queues.toml" --log-level warning >/dev/null 2>&1 &
  WORKER=$!
  t2=$(now)
  while [ "$(rcli eval "return redis.call('llen', 'bench:default') + redis.call('hlen', 'jobrouter:inflight')" 0)" != "0" ]; do sleep 0.01; done
  t3=$(now)
  kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
  results+=("jobrouter $t0 $t1 $t2 $t3")
done

python3 - "$N" "$C" "${results[@]}" <<'PY'
import statistics, sys
n, c = int(sys.argv[1]), sys.argv[2]
enqueue, drain = {}, {}
for row in sys.argv[3:]:
    tool, t0, t1, t2, t3 = row.split()
    enqueue.setdefault(tool, []).append(n / (float(t1) - float(t0)))
    drain.setdefault(tool, []).append(n / (float(t3) - float(t2)))
for tool in ("sidekiq", "jobrouter"):
    print(f"{tool:<10} enqueue {statistics.median(enqueue[tool]):>9,.0f} jobs/s   drain {statistics.median(drain[tool]):>8,.0f} jobs/s "
          f"(rounds: {', '.join(f'{v:,.0f}' for v in drain[tool])}; one process, concurrency {c}, incl. start-up)")
print(f"JobRouter / Sidekiq: drain {statistics.median(drain['jobrouter']) / statistics.median(drain['sidekiq']):.1f} x, "
      f"enqueue {statistics.median(enqueue['jobrouter']) / statistics.median(enqueue['sidekiq']):.1f} x")
PY
