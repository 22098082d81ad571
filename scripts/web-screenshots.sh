#!/usr/bin/env bash
# Screenshots of every dashboard page for the README (docs/screenshots/*.png): a private Redis,
# a worker that runs a few thousand jobs (some fail and retry, some die), a few delayed jobs,
# then `jobrouter web` photographed by headless Chromium. Also prints each page's server time
# with 100,000 jobs queued and 10,000 dead (curl's time to first byte, loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_release
run_dir=$(mktemp -d /tmp/jobrouter-web-shots.XXXXXX)
trap 'stop_redis; [ -n "${WORKER:-}" ] && kill "$WORKER" 2>/dev/null; [ -n "${WEB:-}" ] && kill "$WEB" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
WEB_PORT=$(free_port)
cat > "$run_dir/queues.toml" <<TOML
default_queue = "default"
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[web]
listen = "127.0.0.1:$WEB_PORT"
[types.email]
handler = "exec"
command = ["sh", "-c", "sleep 0.01; case \$JOB_ATTEMPT in 1) [ \$((\$(date +%N) % 7)) -ne 0 ];; *) true;; esac"]
priorities = { high = "emails:high", low = "emails:low" }
default_priority = "low"
max_attempts = 3
backoff = { base = "30s", max = "5m" }
[types.report]
handler = "exec"
command = ["false"]
max_attempts = 1
[groups.mail]
queues = ["emails:high", "emails:low"]
concurrency = 8
[groups.reports]
queues = ["default"]
concurrency = 2
TOML
cfg=(--config "$run_dir/queues.toml")
python3 -c '
import json, random
for i in range(3000):
    print(json.dumps({"type": "email", "priority": random.choice(["high", "low", "low"]), "payload": {"to": f"user{i}@example.org", "template": "welcome"}}))
for i in range(40):
    print(json.dumps({"type": "report", "payload": {"month": "2026-11", "account": i, "note": "<script>alert(1)</script>"}}))
' > "$run_dir/jobs.ndjson"
"$BIN" enqueue "${cfg[@]}" --batch "$run_dir/jobs.ndjson" >/dev/null 2>&1
"$BIN" enqueue "${cfg[@]}" email --payload '{"to":"later@example.org"}' --in 2h >/dev/null
"$BIN" work "${cfg[@]}" --log-level warning >/dev/null 2>&1 &
WORKER=$!
sleep 8
"$BIN" enqueue "${cfg[@]}" --batch "$run_dir/jobs.ndjson" >/dev/null 2>&1
"$BIN" web "${cfg[@]}" --log-level warning >/dev/null 2>&1 &
WEB=$!
wait_for_port "$WEB_PORT"
mkdir -p docs/screenshots
for page in overview:/ queues:/queues workers:/workers scheduled:/scheduled dead:/dead; do
  name=${page%%:*}; path=${page#*:}
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,860 \
    --screenshot="docs/screenshots/$name.png" "http://127.0.0.1:$WEB_PORT$path" >/dev/null 2>&1
  echo "docs/screenshots/$name.png"
done
kill "$WORKER"; wait "$WORKER" || true; WORKER=""

log "server time with 100,000 jobs queued and 10,000 dead"
redis-cli -p "$REDIS_PORT" flushall >/dev/null
write_ping_jobs 100000 "$run_dir/ping.ndjson"
sed -i 's/"ping"/"email"/' "$run_dir/ping.ndjson"
"$BIN" enqueue "${cfg[@]}" --batch "$run_dir/ping.ndjson" >/dev/null 2>&1
python3 -c '
import json
for i in range(10000): print(json.dumps({"type": "report", "payload": {"n": i}}))' > "$run_dir/dead.ndjson"
"$BIN" enqueue "${cfg[@]}" --batch "$run_dir/dead.ndjson" >/dev/null 2>&1
"$BIN" work "${cfg[@]}" --group reports --log-level warning >/dev/null 2>&1 &
WORKER=$!
while [ "$(redis-cli -p "$REDIS_PORT" zcard jobrouter:dead)" -lt 10000 ]; do sleep 0.5; done
kill "$WORKER"; wait "$WORKER" || true; WORKER=""
for path in / /queues "/queues/emails:low?page=1000" /workers /scheduled /dead "/dead?q=exit" /api/overview; do
  curl -s -o /dev/null -w "%{time_starttransfer}" "http://127.0.0.1:$WEB_PORT$path" >/dev/null   # warm
  best=$(for _ in 1 2 3 4 5; do curl -s -o /dev/null -w "%{time_starttransfer}\n" "http://127.0.0.1:$WEB_PORT$path"; done | sort -n | head -1)
  python3 -c "print(f'{\"$path\":<28} {$best * 1000:6.1f} ms')"
done
