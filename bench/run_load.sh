#!/bin/sh
# REST load benchmark of `pbskit serve`: wrk (HTTP/1.1 keep-alive) and h2load against a server
# with a fresh embedded default (datastore store1 + token root@pam!pbskit) on 127.0.0.1.
# Prints requests/s, latency, errors and the server's peak RSS (VmHWM). Not part of CI.
#
#   bench/run_load.sh [WORKDIR]          (default: ./bench-work-load)
#
# SERVER_THREADS (default 4): `pbskit serve --threads`. DURATION (default 10): seconds per wrk
# run. CONNS (default 64): wrk connections; WIDE_CONNS (default 1000): the many-connections
# wrk run. WRK_TIMEOUT (default 30s): wrk counts an answer slower than this as a "timeout"
# socket error (wrk's own default, 2s, is shorter than the TLS handshake queue of 1000 new
# connections on 2 cores). H2_REQUESTS (default 20000) and H2_CLIENTS (default 100): h2load -n/-c.
# Needs wrk and h2load (Debian: wrk, nghttp2-client), jq and curl.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$PWD/bench-work-load}
BUILD=${BUILD:-$SRC/build-bench}
SERVER_THREADS=${SERVER_THREADS:-4}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
WIDE_CONNS=${WIDE_CONNS:-1000}
WRK_TIMEOUT=${WRK_TIMEOUT:-30s}
H2_REQUESTS=${H2_REQUESTS:-20000}
H2_CLIENTS=${H2_CLIENTS:-100}
for tool in wrk h2load jq curl; do
  command -v "$tool" >/dev/null || { echo "Error: $tool is not installed" >&2; exit 2; }
done

cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target pbskit
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true   # wrk's client sockets

rm -rf "$WORK"
mkdir -p "$WORK"
"$BUILD/pbskit" --config-dir "$WORK/etc" --state-dir "$WORK/state" --output-format json \
  serve --listen 127.0.0.1:0 --threads "$SERVER_THREADS" \
  --default-store-path "$WORK/store1" >"$WORK/serve.json" 2>"$WORK/serve.log" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT INT TERM

# First start: RSA-4096 certificate and the datastore's 65536 chunk directories.
i=0
until [ -s "$WORK/serve.json" ]; do
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
  i=$((i + 1)); [ "$i" -le 600 ] || { echo "Error: server did not start" >&2; exit 1; }
  sleep 0.5
done
PORT=$(jq -r .port "$WORK/serve.json")
STORE=$(jq -r .store "$WORK/serve.json")
TOKEN=$(jq -r .tokenid "$WORK/serve.json"):$(jq -r .value "$WORK/serve.json")
AUTH="Authorization: PBSAPIToken=$TOKEN"
BASE=https://127.0.0.1:$PORT/api2/json
curl -skf -H "$AUTH" "$BASE/version" >/dev/null ||
  { echo "Error: GET /version failed" >&2; exit 1; }

echo "== pbskit serve on 127.0.0.1:$PORT, $SERVER_THREADS I/O threads," \
  "$(nproc) cores (shared with the load tools)"

run_wrk() {  # connections url
  echo "-- wrk -t2 -c$1 -d${DURATION}s --timeout $WRK_TIMEOUT $2"
  out=$(wrk -t2 -c"$1" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency -H "$AUTH" "$2")
  echo "$out" | grep -E 'Requests/sec|Latency  |  50%|  99%|requests in|Non-2xx|Socket errors' |
    sed 's/^ */   /'
  # wrk prints these two lines only when they are not zero.
  echo "$out" | grep -q 'Non-2xx' || echo "   Non-2xx or 3xx responses: 0"
  echo "$out" | grep -q 'Socket errors' || echo "   Socket errors: 0"
}
run_h2load() {  # url
  echo "-- h2load --h1 -n$H2_REQUESTS -c$H2_CLIENTS $1"
  h2load --h1 -n"$H2_REQUESTS" -c"$H2_CLIENTS" -H "$AUTH" "$1" | grep -E \
    '^finished in|^requests:|^status codes:|^time for request:|^time for connect:' | sed 's/^/   /'
}

# The REST port speaks HTTP/1.1 only (no ALPN, like PBS), hence h2load --h1.
run_wrk "$CONNS" "$BASE/version"
run_wrk "$CONNS" "$BASE/admin/datastore/$STORE/status"
run_wrk "$WIDE_CONNS" "$BASE/version"
run_h2load "$BASE/version"
run_h2load "$BASE/admin/datastore/$STORE/groups"

curl -skf -H "$AUTH" "$BASE/version" >/dev/null ||
  { echo "Error: server stopped answering" >&2; exit 1; }
hwm=$(awk '/VmHWM/ {print $2, $3}' "/proc/$PID/status")
rss=$(awk '/VmRSS/ {print $2, $3}' "/proc/$PID/status")
echo "== server peak RSS: $hwm (now $rss)"
