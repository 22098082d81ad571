#!/usr/bin/env bash
# Operator views under a big dead-letter store (#14): fills the store with N dead jobs of SIZE bytes
# (foreign entries of an unknown type, dead-lettered by a real worker), then runs `jobrouter status`
# and `dead list` in a loop while another connection PINGs Redis, and prints the worst PING
# latency and the slowest script Redis logged. A script that prints figures, not a test.
#   scripts/bench-status.sh [N] [SIZE]     (defaults: 10000 dead jobs of 20000 bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-10000}
SIZE=${2:-20000}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
log "building (release)"
build_jobrouter release >/dev/null

run_dir=$(mktemp -d /tmp/jobrouter-bench-status.XXXXXX)
trap 'stop_redis; [ -n "${WORKER:-}" ] && kill -9 "$WORKER" 2>/dev/null; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
cat > "$run_dir/queues.toml" <<TOML
default_queue = "bench:default"
max_dead = $((N + 1000))
[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
[types.known]
handler = "noop"
[groups.bench]
queues = ["bench:default"]
concurrency = 32
TOML

log "filling the dead-letter store: $N entries of $SIZE bytes"
python3 - "$REDIS_PORT" "$N" "$SIZE" <<'PY'
import socket, sys
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
body = b'{"type":"gone","payload":"' + b"x" * (size - 30) + b'"}'
batch = b"".join(cmd("RPUSH", "bench:default", body) for _ in range(n))
s.sendall(batch)
got = b""
while got.count(b"\r\n") < n:
    got += s.recv(1 << 20)
PY
"$BIN" work --config "$run_dir/queues.toml" --log-level critical &
WORKER=$!
until [ "$(redis-cli -p "$REDIS_PORT" ZCARD jobrouter:dead)" -ge "$N" ]; do sleep 0.2; done
kill "$WORKER"; wait "$WORKER" 2>/dev/null || true; WORKER=""
redis-cli -p "$REDIS_PORT" CONFIG SET slowlog-log-slower-than 0 >/dev/null
redis-cli -p "$REDIS_PORT" SLOWLOG RESET >/dev/null

log "status and dead list in a loop, PING from another connection"
python3 - "$REDIS_PORT" "$BIN" "$run_dir/queues.toml" <<'PY'
import socket, subprocess, sys, threading, time
port, binary, config = int(sys.argv[1]), sys.argv[2], sys.argv[3]
worst, count, stop = 0.0, 0, False
def ping():
    global worst, count
    s = socket.create_connection(("127.0.0.1", port))
    while not stop:
        t = time.perf_counter(); s.sendall(b"PING\r\n"); s.recv(64)
        worst = max(worst, time.perf_counter() - t); count += 1
        time.sleep(0.001)
thread = threading.Thread(target=ping); thread.start()
start = time.perf_counter(); runs = 0
while time.perf_counter() - start < 10:
    subprocess.run([binary, "status", "--config", config], stdout=subprocess.DEVNULL, check=True)
    subprocess.run([binary, "dead", "list", "--limit", "100", "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    runs += 1
stop = True; thread.join()
print(f"status + dead list runs: {runs} in 10 s; PINGs: {count}; worst PING latency: {worst * 1000:.2f} ms")
PY
echo "slowest commands Redis logged (µs, command):"
redis-cli -p "$REDIS_PORT" SLOWLOG GET 2000 | awk 'NR % 1 == 0' | python3 -c '
import sys
lines = [l.strip() for l in sys.stdin]
# SLOWLOG GET in redis-cli raw form: id, time, duration, then the command words.
entries = []
i = 0
while i + 3 < len(lines):
    if lines[i].isdigit() and lines[i+1].isdigit() and lines[i+2].isdigit():
        entries.append((int(lines[i+2]), lines[i+3])); i += 4
    else:
        i += 1
for duration, name in sorted(entries, reverse=True)[:5]:
    print(f"  {duration:>8}  {name}")
'
