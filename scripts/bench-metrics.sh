#!/usr/bin/env bash
# Cost of being watched: drains N noop jobs with one `jobrouter work --http` process (release
# build), once unscraped and once scraped every 100 ms (10/s, one curl process on a kept-alive
# connection, as Prometheus would), at
# concurrency 10 and 64, alternating (ABBA: odd rounds unscraped first, even rounds scraped
# first, so a drift over the run does not favour either), ROUNDS times, all in the same run; prints
# jobs/s for each (median of the rounds), the worker's CPU per job, and the ratios. Then measures
# one scrape's cost directly: the worker's CPU over 2,000 back-to-back scrapes of a populated
# registry. Last, the measure that holds on a noisy machine: one long drain per concurrency
# (LONG_N jobs) in which scraping is switched on and off every half second, each scraped window
# compared with the unscraped ones around it (scripts/scrape-windows.py). Prints figures; not a test.
#   scripts/bench-metrics.sh [N] [ROUNDS] [LONG_N]     (default 100000 4 1500000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-100000}
ROUNDS=${2:-4}
LONG_N=${3:-1500000}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_release

run_dir=$(mktemp -d /tmp/jobrouter-bench-metrics.XXXXXX)
trap 'stop_redis; [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null; [ -n "${SCRAPER:-}" ] && kill "$SCRAPER" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
HTTP_PORT=$(free_port)

write_ping_jobs "$N" "$run_dir/jobs.ndjson"

write_config() {  # $1 concurrency
  cat > "$run_dir/queues.toml" <<TOML
default_queue = "bench:default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[http]
listen = "127.0.0.1:$HTTP_PORT"
[types.ping]
handler = "noop"
[groups.bench]
queues = ["bench:default"]
concurrency = $1
TOML
}

now() { date +%s.%N; }
results=()
for round in $(seq 1 "$ROUNDS"); do
  for concurrency in 10 64; do
    order="false true"; [ $((round % 2)) = 0 ] && order="true false"
    for scraped in $order; do
      write_config "$concurrency"
      rcli flushall >/dev/null
      "$BIN" enqueue --config "$run_dir/queues.toml" --batch "$run_dir/jobs.ndjson" >/dev/null 2>&1
      log "round $round: drain $N jobs, concurrency $concurrency, scraped every 100 ms: $scraped"
      t0=$(now)
      "$BIN" work --config "$run_dir/queues.toml" --log-level warning >/dev/null 2>"$run_dir/work.err" &
      WORKER=$!
      if [ "$scraped" = true ]; then
        # One long-lived scraper on one kept-alive connection, as Prometheus is (not a new
        # process per scrape, which would cost this machine more than the scrape itself).
        curl -s -o /dev/null --rate 10/s "http://127.0.0.1:$HTTP_PORT/metrics?[1-100000]" &
        SCRAPER=$!
      fi
      while [ "$(rcli llen bench:default)" != "0" ] || [ "$(rcli hlen jobrouter:inflight)" != "0" ]; do sleep 0.01; done
      t1=$(now)
      cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$WORKER/stat")   # the worker's CPU seconds, less noisy than wall time
      if [ -n "${SCRAPER:-}" ]; then kill "$SCRAPER"; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=""; fi
      if [ "$scraped" = true ]; then
        curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep '^jobrouter_jobs_total' | head -1
      fi
      if [ "$round" = 1 ] && [ "$concurrency" = 64 ] && [ "$scraped" = true ]; then
        # The registry now holds every family a drain makes: time 2,000 scrapes back to back.
        before=$(awk '{print $14 + $15}' "/proc/$WORKER/stat")
        curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/metrics?[1-2000]"
        after=$(awk '{print $14 + $15}' "/proc/$WORKER/stat")
        scrape_bytes=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | wc -c)
        scrape_us=$(( (after - before) * 10000 / 2000 ))   # clock ticks are 10 ms
      fi
      kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
      results+=("$concurrency $scraped $t0 $t1 $cpu")
    done
  done
done

python3 - "$N" "$scrape_us" "$scrape_bytes" "${results[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
scrape_us, scrape_bytes = int(sys.argv[2]), int(sys.argv[3])
rates, cpus = {}, {}
for row in sys.argv[4:]:
    c, scraped, t0, t1, cpu = row.split()
    rates.setdefault((c, scraped), []).append(n / (float(t1) - float(t0)))
    cpus.setdefault((c, scraped), []).append(float(cpu) / n * 1e6)
for (c, scraped), values in sorted(rates.items()):
    print(f"concurrency {c:>2}  {'scraped 10/s' if scraped == 'true' else 'unscraped   '}  drain {statistics.median(values):>8,.0f} jobs/s  (median of {len(values)}: {', '.join(f'{v:,.0f}' for v in values)}); worker CPU {statistics.median(cpus[(c, scraped)]):.1f} µs/job")
for c in ("10", "64"):
    ratio = statistics.median(rates[(c, 'true')]) / statistics.median(rates[(c, 'false')]) * 100
    cost = statistics.median(cpus[(c, 'true')]) / statistics.median(cpus[(c, 'false')]) * 100 - 100
    print(f"concurrency {c:>2}  scraped / unscraped: {ratio:.0f} % of the drain rate; worker CPU per job {cost:+.1f} %")
print(f"one scrape ({scrape_bytes:,} bytes): {scrape_us} µs of worker CPU; at 10/s that is {scrape_us * 10 / 1e4:.2f} % of one core")
PY

write_ping_jobs "$LONG_N" "$run_dir/long.ndjson"
for concurrency in 10 64; do
  write_config "$concurrency"
  rcli flushall >/dev/null
  "$BIN" enqueue --config "$run_dir/queues.toml" --batch "$run_dir/long.ndjson" >/dev/null 2>&1
  log "drain $LONG_N jobs at concurrency $concurrency, scraping switched on and off every 0.5 s"
  python3 scripts/scrape-windows.py "$REDIS_PORT" "$HTTP_PORT" bench:default 0.5 >"$run_dir/windows.out" &
  windows=$!
  "$BIN" work --config "$run_dir/queues.toml" --log-level warning >/dev/null 2>"$run_dir/work.err" &
  WORKER=$!
  wait "$windows" || true
  kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
  echo "concurrency $concurrency  $(cat "$run_dir/windows.out")"
done
