#!/usr/bin/env bash
# The demo: installs what is missing, starts a private redis-server (unless JOBROUTER_REDIS_URL is
# set), a private PostgreSQL (unless JOBROUTER_POSTGRES_URL is set) and a local SMTP sink (unless
# JOBROUTER_SMTP_URL is set), builds, migrates the ledger's schema, enqueues jobs of several
# types and priorities, runs the groups from queues.toml, shows the mails the sink received, and
# checks that every high-priority email was sent before any low one; ends with the ledger
# (history of one mail, stats), a few lines of the worker's /metrics and the web dashboard's
# live figures (DEMO_WEB=1 keeps the dashboard and the servers up until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages "${JOBROUTER_PACKAGES[@]}"
log "building jobrouter"
build_jobrouter debug

run_dir="$PWD/.run/demo"
rm -rf "$run_dir" && mkdir -p "$run_dir"
trap 'stop_redis; stop_smtp_sink; stop_postgres; [ -n "${WORKER:-}" ] && kill "$WORKER" 2>/dev/null || true' EXIT
if [ -z "${JOBROUTER_REDIS_URL:-}" ]; then
  start_redis "$run_dir/redis"
  export JOBROUTER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  log "started a private redis-server on 127.0.0.1:$REDIS_PORT (data in $run_dir/redis)"
else
  log "using the Redis in JOBROUTER_REDIS_URL"
fi
if [ -z "${JOBROUTER_SMTP_URL:-}" ]; then
  start_smtp_sink "$run_dir/mail.jsonl"
  export JOBROUTER_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"
  log "started a local SMTP sink on 127.0.0.1:$SMTP_PORT (it keeps every mail in $run_dir/mail.jsonl)"
else
  log "sending mail through JOBROUTER_SMTP_URL"
fi
if [ -z "${JOBROUTER_POSTGRES_URL:-}" ]; then
  start_postgres "$run_dir/postgres"
  export JOBROUTER_POSTGRES_URL="postgres://postgres@127.0.0.1:$POSTGRES_PORT/jobrouter"
  log "started a private PostgreSQL on 127.0.0.1:$POSTGRES_PORT (data in $run_dir/postgres)"
else
  log "using the PostgreSQL in JOBROUTER_POSTGRES_URL"
fi
rcli() { redis-cli -u "$JOBROUTER_REDIS_URL" "$@"; }

log "jobrouter check"
"$BIN" check
log "jobrouter migrate (the ledger's schema)"
"$BIN" migrate

log "enqueueing 10 low-priority emails, 3 reports, then 10 high-priority emails (no worker running yet)"
for i in $(seq 1 10); do
  echo "{\"type\":\"email\",\"priority\":\"low\",\"payload\":{\"template\":\"digest\",\"to\":\"reader$i@example.org\",\"vars\":{\"name\":\"Reader $i\"}}}"
done | "$BIN" enqueue --batch -
for i in 1 2 3; do "$BIN" enqueue report --payload "{\"month\":\"2026-$i\"}"; done
for i in $(seq 1 10); do
  echo "{\"type\":\"email\",\"priority\":\"high\",\"payload\":{\"template\":\"password_reset\",\"to\":\"Zoë User$i <user$i@example.org>\",\"vars\":{\"name\":\"Zoë $i\",\"link\":\"https://example.org/reset?token=$i\"}}}"
done | "$BIN" enqueue --batch -
log "an entry pushed by another Redis client, and one that is not JSON"
rcli RPUSH default '{"type":"report","payload":{"month":"from redis-cli"}}' 'not json' >/dev/null
"$BIN" status

log "running the worker groups (mail: emails:high > emails:low, 20 mails/s; general: default)"
HTTP_PORT=$(free_port)
"$BIN" work --http "127.0.0.1:$HTTP_PORT" >"$run_dir/worker.log" 2>"$run_dir/handlers.log" &
WORKER=$!
for _ in $(seq 1 300); do
  [ -f "$run_dir/mail.jsonl" ] && [ "$(wc -l < "$run_dir/mail.jsonl")" -ge 20 ] && \
    [ "$(rcli LLEN default)" = "0" ] && break
  sleep 0.1
done
sleep 2.5   # past the worker's 2 s throughput flush, so `status` shows the rates
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" > "$run_dir/metrics.txt" || true
READY=$(curl -s "http://127.0.0.1:$HTTP_PORT/readyz" || true)
kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
cat "$run_dir/worker.log"

log "what the SMTP sink received (parsed by Python's email package), in arrival order"
/usr/bin/python3 - "$run_dir/mail.jsonl" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1]) if "subject" in line]
for r in records:
    kinds = "+".join(p["content_type"].split("/")[1] for p in r["parts"])
    print("  %-40s %-36s %s" % (r["to"][:40], r["subject"][:36], kinds))
order = ["high" if r["subject"].startswith("Reset") else "low" for r in records]
print("  connections used: %d" % len({r["peer"] for r in records}))
if "low" in order and "high" in order and order.index("low") < len(order) - order[::-1].index("high") - 1:
    print("  PRIORITY ORDER BROKEN: a low email was sent before a high one", file=sys.stderr)
    sys.exit(1)
print("  every high-priority email (password reset) was sent before any low one (digest)")
PY

log "status after the run (the non-JSON entry is kept as a dead letter with its reason)"
"$BIN" status
"$BIN" dead list

log "the ledger (PostgreSQL): every attempt of one password-reset mail, then per-type stats"
sleep 1   # the worker's shipper stores its last records as it stops; give PostgreSQL a moment
MAIL_ID=$("$BIN" history --type email --queue emails:high --limit 1 --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$BIN" history "$MAIL_ID"
"$BIN" stats --since 1h

log "what Prometheus scraped from the worker (work --http 127.0.0.1:$HTTP_PORT) just before it stopped: /readyz said $READY"
grep -E '^jobrouter_(jobs_total|smtp_messages_total|queue_depth|dead_jobs|ledger_backlog)|^process_resident' "$run_dir/metrics.txt" | head -20

WEB_PORT=$(free_port)
"$BIN" web --listen "127.0.0.1:$WEB_PORT" --log-level warning >"$run_dir/web.log" 2>&1 &
WEB=$!
trap 'stop_redis; stop_smtp_sink; stop_postgres; [ -n "${WORKER:-}" ] && kill "$WORKER" 2>/dev/null; kill "$WEB" 2>/dev/null || true' EXIT
wait_for_port "$WEB_PORT"
log "the web dashboard (jobrouter web) on http://127.0.0.1:$WEB_PORT: its live figures"
curl -s "http://127.0.0.1:$WEB_PORT/api/overview"; echo
if [ "${DEMO_WEB:-}" = 1 ]; then
  log "DEMO_WEB=1: the dashboard stays up on http://127.0.0.1:$WEB_PORT (and Redis, PostgreSQL with it) until Ctrl-C"
  wait "$WEB" || true
else
  echo "(DEMO_WEB=1 bash scripts/demo.sh keeps it up to click through)"
fi
