#!/usr/bin/env bash
# The demo: installs what is missing, starts a private redis-server (unless JOBROUTER_REDIS_URL is
# set), builds, enqueues jobs of several types and priorities, runs the groups from queues.toml,
# and shows that every high-priority email was started before any low one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages "${JOBROUTER_PACKAGES[@]}"
log "building jobrouter"
swift build --product jobrouter 2>&1 | grep -v "prohibited flag" | tail -1
BIN="$(swift build --show-bin-path)/jobrouter"

run_dir="$PWD/.run/demo"
rm -rf "$run_dir" && mkdir -p "$run_dir"
trap 'stop_redis; [ -n "${WORKER:-}" ] && kill "$WORKER" 2>/dev/null || true' EXIT
if [ -z "${JOBROUTER_REDIS_URL:-}" ]; then
  start_redis "$run_dir/redis"
  export JOBROUTER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  log "started a private redis-server on 127.0.0.1:$REDIS_PORT (data in $run_dir/redis)"
else
  log "using the Redis in JOBROUTER_REDIS_URL"
fi
rcli() { redis-cli -u "$JOBROUTER_REDIS_URL" "$@"; }

log "jobrouter check"
"$BIN" check

log "enqueueing 10 low-priority emails, 3 reports, then 10 high-priority emails (no worker running yet)"
for i in $(seq 1 10); do
  echo "{\"type\":\"email\",\"priority\":\"low\",\"payload\":{\"to\":\"newsletter$i@example.org\",\"template\":\"digest\"}}"
done | "$BIN" enqueue --batch -
for i in 1 2 3; do "$BIN" enqueue report --payload "{\"month\":\"2026-$i\"}"; done
for i in $(seq 1 10); do
  echo "{\"type\":\"email\",\"priority\":\"high\",\"payload\":{\"to\":\"user$i@example.org\",\"template\":\"password-reset\"}}"
done | "$BIN" enqueue --batch -
log "an entry pushed by another Redis client, and one that is not JSON"
rcli RPUSH default '{"type":"report","payload":{"month":"from redis-cli"}}' 'not json' >/dev/null
"$BIN" status

log "running the worker groups (mail: emails:high > emails:low; general: default)"
export DEMO_ORDER_FILE="$run_dir/email-order.txt"
"$BIN" work >"$run_dir/worker.log" 2>"$run_dir/handlers.log" &
WORKER=$!
for _ in $(seq 1 200); do
  [ -f "$DEMO_ORDER_FILE" ] && [ "$(wc -l < "$DEMO_ORDER_FILE")" -ge 20 ] && \
    [ "$(rcli LLEN default)" = "0" ] && [ "$(rcli LLEN emails:low)" = "0" ] && break
  sleep 0.1
done
sleep 0.5
kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
cat "$run_dir/worker.log"

log "the order in which the mail group started email jobs"
awk '{print $1}' "$DEMO_ORDER_FILE" | uniq -c | awk '{printf "  %2d x %s\n", $1, $2}'
first_low=$(grep -n '^low' "$DEMO_ORDER_FILE" | head -1 | cut -d: -f1)
last_high=$(grep -n '^high' "$DEMO_ORDER_FILE" | tail -1 | cut -d: -f1)
if [ "$last_high" -lt "$first_low" ]; then
  echo "  every high-priority email started before any low-priority one"
else
  echo "  PRIORITY ORDER BROKEN: a low email started before a high one" >&2; exit 1
fi

log "status after the run (the non-JSON entry is kept as a dead letter with its reason)"
"$BIN" status
"$BIN" dead list
