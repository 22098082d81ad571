# Shared helpers for scripts/test.sh, scripts/demo.sh and the benchmarks. Source it; do not run it.

# The Debian packages JobRouter builds and tests with.
JOBROUTER_PACKAGES=(pkg-config libhiredis-dev redis-server libcurl4-openssl-dev python3-aiosmtpd)

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

# Starts the test/demo SMTP sink (scripts/smtp-sink.py, Debian's python3-aiosmtpd) on a free port,
# writing one JSON line per message to $1. Sets SMTP_PORT and SMTP_PID.
start_smtp_sink() {
  local out="$1"
  SMTP_PORT=$(free_port)
  /usr/bin/python3 scripts/smtp-sink.py --port "$SMTP_PORT" --out "$out" >"$out.log" 2>&1 &
  SMTP_PID=$!
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $SMTP_PORT)))" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "the SMTP sink did not start; see $out.log" >&2
  return 1
}

stop_smtp_sink() {
  if [ -n "${SMTP_PID:-}" ]; then
    kill "$SMTP_PID" 2>/dev/null || true
    wait "$SMTP_PID" 2>/dev/null || true
    SMTP_PID=""
  fi
}
