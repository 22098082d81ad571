# Shared helpers for scripts/test.sh, scripts/demo.sh and the benchmarks. Source it; do not run it.

# The Debian packages JobRouter builds and tests with.
JOBROUTER_PACKAGES=(pkg-config libhiredis-dev redis-server libcurl4-openssl-dev python3-aiosmtpd openssl stunnel4 libpq-dev postgresql curl tmux systemd python3-prometheus-client prometheus chromium chromium-driver python3-selenium)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs whichever of the given Debian packages are missing.
ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts a private redis-server on a free loopback port with its own data dir under $1.
# Sets REDIS_PORT and REDIS_PID; the server is stopped by stop_redis.
start_redis() {
  local dir="$1"
  mkdir -p "$dir"
  REDIS_PORT=$(free_port)
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" --save '' --appendonly no \
    --daemonize no --logfile "$dir/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis-server did not start; see $dir/redis.log" >&2
  return 1
}

stop_redis() {
  if [ -n "${REDIS_PID:-}" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  fi
}

# Starts a private Redis Cluster of 3 primaries and 3 replicas (redis-cli --cluster create) on free
# loopback ports (each with its bus port, +10000, free too), data under $1. Sets CLUSTER_PORTS
# (space-separated, the nodes) and CLUSTER_PIDS; stopped by stop_redis_cluster.
start_redis_cluster() {
  local dir="$1"
  mkdir -p "$dir"
  CLUSTER_PORTS=$(python3 - <<'PY'
import socket, random
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); return True
    except OSError:
        return False
    finally:
        s.close()
ports = []
while len(ports) < 6:
    port = random.randint(20000, 29999)
    if port not in ports and free(port) and free(port + 10000):
        ports.append(port)
print(" ".join(map(str, ports)))
PY
)
  CLUSTER_PIDS=""
  local port
  for port in $CLUSTER_PORTS; do
    mkdir -p "$dir/$port"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/$port" --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" --cluster-node-timeout 2000 \
      --daemonize no --logfile "$dir/$port/redis.log" &
    CLUSTER_PIDS="$CLUSTER_PIDS $!"
  done
  for port in $CLUSTER_PORTS; do
    for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
  local nodes=""
  for port in $CLUSTER_PORTS; do nodes="$nodes 127.0.0.1:$port"; done
  # shellcheck disable=SC2086
  redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || { echo "redis-cli --cluster create failed; see $dir/create.log" >&2; return 1; }
  local first=${CLUSTER_PORTS%% *}
  for _ in $(seq 1 200); do
    if redis-cli -p "$first" cluster info 2>/dev/null | grep -q "cluster_state:ok" \
      && [ "$(redis-cli -p "$first" cluster nodes | grep -c connected)" -eq 6 ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "the cluster did not become ready; see $dir" >&2
  return 1
}

stop_redis_cluster() {
  local pid
  for pid in ${CLUSTER_PIDS:-}; do kill "$pid" 2>/dev/null || true; done
  for pid in ${CLUSTER_PIDS:-}; do wait "$pid" 2>/dev/null || true; done
  CLUSTER_PIDS=""
}

# Starts a private Sentinel set on free loopback ports, data under $1: a primary, 2 replicas and 3
# sentinels monitoring it as "jobs" (quorum 2). Sets SENTINEL_PORTS (the sentinels), SENTINEL_PIDS;
# stopped by stop_sentinel_set.
start_sentinel_set() {
  local dir="$1" port primary index=0
  mkdir -p "$dir"
  SENTINEL_PIDS=""
  for index in 0 1 2; do
    port=$(free_port)
    mkdir -p "$dir/$port"
    local extra=()
    if [ "$index" -eq 0 ]; then primary=$port; else extra=(--replicaof 127.0.0.1 "$primary"); fi
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/$port" --save '' --appendonly no \
      --daemonize no --logfile "$dir/$port/redis.log" "${extra[@]}" &
    SENTINEL_PIDS="$SENTINEL_PIDS $!"
    wait_for_port "$port" || { echo "redis-server $port did not start" >&2; return 1; }
  done
  for _ in $(seq 1 200); do
    [ "$(redis-cli -p "$primary" info replication | grep -c 'state=online')" -eq 2 ] && break
    sleep 0.05
  done
  SENTINEL_PORTS=""
  for index in 0 1 2; do
    port=$(free_port)
    cat > "$dir/sentinel-$port.conf" <<CONF
port $port
bind 127.0.0.1
dir $dir
sentinel monitor jobs 127.0.0.1 $primary 2
sentinel down-after-milliseconds jobs 1000
sentinel failover-timeout jobs 4000
CONF
    redis-server "$dir/sentinel-$port.conf" --sentinel --daemonize no --logfile "$dir/sentinel-$port.log" &
    SENTINEL_PIDS="$SENTINEL_PIDS $!"
    SENTINEL_PORTS="$SENTINEL_PORTS $port"
  done
  SENTINEL_PORTS=${SENTINEL_PORTS# }
  for port in $SENTINEL_PORTS; do
    for _ in $(seq 1 200); do
      redis-cli -p "$port" sentinel get-master-addr-by-name jobs 2>/dev/null | grep -q "$primary" \
        && [ "$(redis-cli -p "$port" sentinel replicas jobs 2>/dev/null | grep -c '^name$')" -eq 2 ] && break
      sleep 0.05
    done
  done
}

stop_sentinel_set() {
  local pid
  for pid in ${SENTINEL_PIDS:-}; do kill "$pid" 2>/dev/null || true; done
  for pid in ${SENTINEL_PIDS:-}; do wait "$pid" 2>/dev/null || true; done
  SENTINEL_PIDS=""
}

# Waits until something listens on 127.0.0.1:$1.
wait_for_port() {
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $1)))" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# Starts the test/demo SMTP sink (scripts/smtp-sink.py, Debian's python3-aiosmtpd) on a free port,
# writing one JSON line per message to $1; extra arguments go to the sink (--auth, --cert, ...).
# Sets SMTP_PORT and SMTP_PID (and adds the pid to SMTP_PIDS for stop_smtp_sink).
start_smtp_sink() {
  local out="$1"
  shift
  SMTP_PORT=$(free_port)
  /usr/bin/python3 scripts/smtp-sink.py --port "$SMTP_PORT" --out "$out" "$@" >"$out.log" 2>&1 &
  SMTP_PID=$!
  SMTP_PIDS="${SMTP_PIDS:-} $SMTP_PID"
  wait_for_port "$SMTP_PORT" && return 0
  echo "the SMTP sink did not start; see $out.log" >&2
  return 1
}

stop_smtp_sink() {
  for pid in ${SMTP_PIDS:-} ${SMTP_PID:-}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SMTP_PID=""
  SMTP_PIDS=""
}

# Makes a private CA and a certificate it signs for 127.0.0.1 and localhost, in $1:
# ca.pem, server.pem, server.key.
make_test_certificates() {
  local dir="$1"
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 \
    -subj "/CN=JobRouter test CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/server.pem" -days 2 -extfile "$dir/ext.cnf" 2>/dev/null
}

# The tested recipe for Redis over TLS (README "Redis over TLS"): hiredis 0.14 has no TLS, so a
# local stunnel client takes plain connections on 127.0.0.1 and speaks TLS to the server, checking
# its certificate against a CA file. For the test, a second stunnel plays the managed TLS Redis in
# front of the private redis-server. $1 dir, $2 the Redis port, $3 CA file, $4 server cert, $5 key.
# Sets REDIS_TLS_PORT (the TLS side) and REDIS_TUNNEL_PORT (where JobRouter connects, plain).
start_redis_tls_tunnel() {
  local dir="$1" redis_port="$2" ca="$3" cert="$4" key="$5"
  mkdir -p "$dir"
  REDIS_TLS_PORT=$(free_port)
  REDIS_TUNNEL_PORT=$(free_port)
  cat >"$dir/server.conf" <<CONF
foreground = yes
pid =
[redis-tls]
accept = 127.0.0.1:$REDIS_TLS_PORT
connect = 127.0.0.1:$redis_port
cert = $cert
key = $key
CONF
  cat >"$dir/client.conf" <<CONF
foreground = yes
pid =
[redis]
client = yes
accept = 127.0.0.1:$REDIS_TUNNEL_PORT
connect = 127.0.0.1:$REDIS_TLS_PORT
verifyChain = yes
CAfile = $ca
checkHost = localhost
CONF
  stunnel "$dir/server.conf" >"$dir/server.log" 2>&1 &
  TUNNEL_PIDS="${TUNNEL_PIDS:-} $!"
  stunnel "$dir/client.conf" >"$dir/client.log" 2>&1 &
  TUNNEL_PIDS="${TUNNEL_PIDS:-} $!"
  wait_for_port "$REDIS_TLS_PORT" && wait_for_port "$REDIS_TUNNEL_PORT" && return 0
  echo "stunnel did not start; see $dir/*.log" >&2
  return 1
}

stop_redis_tls_tunnel() {
  for pid in ${TUNNEL_PIDS:-}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  TUNNEL_PIDS=""
}

# Starts a private PostgreSQL 15 on a free loopback port with its own data dir under $1 (owned by
# the `postgres` user: initdb and postgres refuse to run as root) and creates database `jobrouter`.
# Sets POSTGRES_PORT and POSTGRES_DIR; stopped by stop_postgres.
start_postgres() {
  local dir="$1"
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; return 1; }
  POSTGRES_DIR="$dir"
  POSTGRES_PORT=$(free_port)
  mkdir -p "$dir"
  local run_as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    chmod a+x "$(dirname "$dir")"   # a private mktemp dir: let the postgres user reach its own dir
    run_as=(runuser -u postgres --)
  fi
  "${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { echo "initdb failed; see $dir/initdb.log" >&2; return 1; }
  "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $POSTGRES_PORT -k $dir -c fsync=off" start >/dev/null \
    || { echo "postgres did not start; see $dir/postgres.log" >&2; return 1; }
  POSTGRES_BIN="$bin"
  POSTGRES_DIRS="${POSTGRES_DIRS:-} $dir"
  "${run_as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres jobrouter
}

stop_postgres() {
  if [ -n "${POSTGRES_BIN:-}" ]; then
    local run_as=() dir
    [ "$(id -u)" -eq 0 ] && run_as=(runuser -u postgres --)
    for dir in ${POSTGRES_DIRS:-}; do
      kill -CONT "$(head -1 "$dir/data/postmaster.pid" 2>/dev/null)" 2>/dev/null || true   # a test may have paused it
      "${run_as[@]}" "$POSTGRES_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    done
    POSTGRES_DIRS=""
  fi
}

# Builds `jobrouter` and `jobrouter-cli` (the one hands commands to the other: both are needed)
# in configuration $1 (debug or release) and sets BIN to `jobrouter`.
build_jobrouter() {
  local configuration="${1:-debug}"
  swift build -c "$configuration" --product jobrouter-cli 2>&1 | grep -v "prohibited flag" | tail -1
  swift build -c "$configuration" --product jobrouter 2>&1 | grep -v "prohibited flag" | tail -1
  BIN="$(swift build -c "$configuration" --show-bin-path)/jobrouter"
}

# Builds the release binaries (benchmarks) and sets BIN to `jobrouter`.
build_release() {
  log "building (release)"
  build_jobrouter release
}

# The "ceiling" the benchmarks compare drains with: LPOP/s of `redis-benchmark -t lpop -c 10`
# (N requests, $1) against the private Redis on $REDIS_PORT, printed as a number.
lpop_ceiling() {
  redis-benchmark -p "$REDIS_PORT" -t lpop -c 10 -n "$1" -q 2>/dev/null | tr '\r' '\n' \
    | awk '/LPOP/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) {print $i; exit}}'
}

# Writes $1 `ping` jobs (NDJSON for `enqueue --batch`) to the file $2.
write_ping_jobs() {
  python3 - "$1" > "$2" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    sys.stdout.write('{"type":"ping","payload":{"n":%d}}\n' % i)
PY
}
