#!/usr/bin/env bash
# SMTP benchmark: N mails through one `jobrouter work` process (concurrency C) to a local SMTP sink,
# once with reused connections and once with a new connection per mail; prints mails/s and the
# number of connections the sink saw. A script that prints figures, not a test.
#   scripts/bench-smtp.sh [N] [C]     (defaults: 500 mails, concurrency 4)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
N=${1:-500}
C=${2:-4}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
log "building (release)"
build_jobrouter release

run_dir=$(mktemp -d /tmp/jobrouter-bench-smtp.XXXXXX)
trap 'stop_redis; stop_smtp_sink; [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
start_smtp_sink "$run_dir/mail.jsonl"

run() {
  local reuse="$1" label="$2"
  : > "$run_dir/mail.jsonl"
  cat > "$run_dir/queues.toml" <<TOML
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
namespace = "bench-$reuse"
[smtp]
url = "smtp://127.0.0.1:$SMTP_PORT"
tls = "off"
from = "Bench <bench@example.com>"
reuse_connections = $reuse
[types.email]
handler = "smtp"
priorities = { high = "bench:mail:$reuse" }
default_priority = "high"
[groups.mail]
queues = ["bench:mail:$reuse"]
concurrency = $C
TOML
  python3 -c "
import json
for i in range($N):
    print(json.dumps({'type': 'email', 'payload': {'to': 'user%d@example.org' % i, 'subject': 'Bench %d' % i, 'text': 'Hello %d' % i, 'html': '<p>Hello %d</p>' % i}}))
" > "$run_dir/mails.ndjson"
  "$BIN" enqueue --config "$run_dir/queues.toml" --batch "$run_dir/mails.ndjson" 2>/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" work --config "$run_dir/queues.toml" --log-level warning >/dev/null 2>&1 &
  WORKER=$!
  while [ "$(wc -l < "$run_dir/mail.jsonl")" -lt "$N" ]; do sleep 0.01; done
  t1=$(date +%s.%N)
  kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
  local connections
  connections=$(python3 -c "import json; print(len({json.loads(l)['peer'] for l in open('$run_dir/mail.jsonl')}))")
  python3 -c "print('%-28s %6d mails  %8.0f mails/s  %5d connections' % ('$label', $N, $N / ($t1 - $t0), $connections))"
}

log "$N mails, concurrency $C, local aiosmtpd sink"
run true "reused connections"
run false "new connection per mail"
