#!/usr/bin/env bash
# Cluster benchmark: drain throughput of 1, 2 and 3 worker groups (one `jobrouter work --group`
# process each, noop jobs) on a private 3-primary/3-replica Redis Cluster, each group's hash tag
# on its own shard, beside the same groups on one private redis-server, in the same run. Prints
# jobs/s for each, and the busiest Redis server's CPU (share of one core) during the drain: on one
# machine the worker processes and the servers share the cores, so the shards' gain shows as the
# load each server carries. A script that prints figures, not a test.
#   scripts/bench-cluster.sh [JOBS_PER_GROUP] [CONCURRENCY]     (defaults: 50000, 32)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

N=${1:-50000}
CONCURRENCY=${2:-32}
ensure_packages "${JOBROUTER_PACKAGES[@]}"
build_release

run_dir=$(mktemp -d /tmp/jobrouter-bench-cluster.XXXXXX)
WORKERS=""
trap 'for w in $WORKERS; do kill -9 "$w" 2>/dev/null; done; stop_redis; stop_redis_cluster; rm -rf "$run_dir"' EXIT
start_redis "$run_dir/redis"
start_redis_cluster "$run_dir/cluster"
first=${CLUSTER_PORTS%% *}
seeds=$(for p in $CLUSTER_PORTS; do printf '"127.0.0.1:%s",' "$p"; done)
seeds="[${seeds%,}]"

# One tag per primary: the first tag g<i>... whose slot that primary serves.
tags=$(redis-cli -p "$first" cluster slots | python3 -c '
import sys
def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc
lines = sys.stdin.read().split("\n")
ranges, i = [], 0
while i + 3 < len(lines):
    if lines[i].isdigit() and lines[i + 1].isdigit() and int(lines[i + 1]) <= 16383 and int(lines[i]) <= int(lines[i + 1]) and not lines[i + 2].isdigit():
        ranges.append((int(lines[i]), int(lines[i + 1]), lines[i + 3]))
        i += 4
    else:
        i += 1
owners, tags, n = {}, [], 0
while len(tags) < 3 and n < 10000:
    tag = "g%d" % n
    n += 1
    slot = crc16(tag.encode()) % 16384
    owner = next(port for first, last, port in ranges if first <= slot <= last)
    if owner not in owners:
        owners[owner] = tag
        tags.append(tag)
print(" ".join(tags))
')
read -r -a TAGS <<< "$tags"
log "cluster on ports $CLUSTER_PORTS; group tags ${TAGS[*]} (one per primary)"

# queues.toml for $1 groups, against "$2" (single or cluster).
write_config() {
  local groups=$1 mode=$2 file=$3
  {
    echo "default_queue = \"{${TAGS[0]}}q\""
    echo "[redis]"
    if [ "$mode" = cluster ]; then echo "cluster = $seeds"; else echo "url = \"redis://127.0.0.1:$REDIS_PORT/0\""; fi
    for ((g = 0; g < groups; g++)); do
      printf '[types.t%d]\nhandler = "noop"\npriorities = { normal = "{%s}q" }\ndefault_priority = "normal"\n' "$g" "${TAGS[$g]}"
      printf '[groups.g%d]\nqueues = ["{%s}q"]\nconcurrency = %d\n' "$g" "${TAGS[$g]}" "$CONCURRENCY"
    done
  } > "$file"
}

# Jobs left for group $2 ($1: single or cluster): queued plus in flight.
left() {
  local mode=$1 tag=$2
  if [ "$mode" = cluster ]; then
    redis-cli -c -p "$first" eval "return redis.call('llen', KEYS[1]) + redis.call('hlen', KEYS[2])" 2 "{$tag}q" "jobrouter:{$tag}:inflight"
  else
    redis-cli -p "$REDIS_PORT" eval "return redis.call('llen', KEYS[1]) + redis.call('hlen', KEYS[2])" 2 "{$tag}q" "jobrouter:inflight"
  fi
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # CPU time in clock ticks (10 ms)
# Every server's CPU ticks, "pid ticks" a line.
server_ticks() {
  for pid in $REDIS_PID $CLUSTER_PIDS; do echo "$pid $(ticks "$pid")"; done
}

declare -A RATE BUSIEST
for groups in 1 2 3; do
  for mode in single cluster; do
    config="$run_dir/$mode-$groups.toml"
    write_config "$groups" "$mode" "$config"
    python3 - "$N" "$groups" > "$run_dir/jobs.ndjson" <<'PY'
import sys
n, groups = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    for g in range(groups):
        sys.stdout.write('{"type":"t%d","payload":{"n":%d}}\n' % (g, i))
PY
    "$BIN" enqueue --config "$config" --batch "$run_dir/jobs.ndjson" >/dev/null 2>"$run_dir/enqueue.log"
    log "$groups group(s), $mode: draining $((N * groups)) jobs"
    server_ticks > "$run_dir/ticks.before"
    t0=$(date +%s.%N)
    WORKERS=""
    for ((g = 0; g < groups; g++)); do
      "$BIN" work --config "$config" --group "g$g" --log-level warning >/dev/null 2>>"$run_dir/work.err" &
      WORKERS="$WORKERS $!"
    done
    for ((g = 0; g < groups; g++)); do
      while [ "$(left "$mode" "${TAGS[$g]}")" != "0" ]; do sleep 0.02; done
    done
    t1=$(date +%s.%N)
    server_ticks > "$run_dir/ticks.after"
    BUSIEST[$mode-$groups]=$(python3 - "$run_dir/ticks.before" "$run_dir/ticks.after" "$t0" "$t1" <<'PY'
import sys
before = dict(line.split() for line in open(sys.argv[1]))
after = dict(line.split() for line in open(sys.argv[2]))
seconds = float(sys.argv[4]) - float(sys.argv[3])
print("%d%%" % round(max((int(after[p]) - int(before[p])) / 100 / seconds * 100 for p in after)))
PY
)
    for w in $WORKERS; do kill -TERM "$w"; wait "$w" || true; done
    WORKERS=""
    RATE[$mode-$groups]=$(python3 -c "print(round($N * $groups / ($t1 - $t0)))")
  done
done

printf '\n%-7s %15s %15s %7s %22s %22s\n' groups "one redis (/s)" "cluster (/s)" ratio "one redis: server CPU" "cluster: busiest shard"
for groups in 1 2 3; do
  printf '%-7s %15s %15s %7s %22s %22s\n' "$groups" "${RATE[single-$groups]}" "${RATE[cluster-$groups]}" \
    "$(python3 -c "print('%.2f' % (${RATE[cluster-$groups]} / ${RATE[single-$groups]}))")" "${BUSIEST[single-$groups]}" "${BUSIEST[cluster-$groups]}"
done
echo "(each group a 'jobrouter work --group' process, concurrency $CONCURRENCY, $N noop jobs per group; $(nproc) cores)"
