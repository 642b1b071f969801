#!/usr/bin/env bash
# Host benchmark: GET /health through `stockops up` (a fresh component instance per request, the full
# health check: database query, schema check, key-value write/read/delete, four registry/bars queries)
# under wrk at 1, 16 and 64 connections, and the time from `stockops up` to the first answer with a
# warm compile cache. Prints a table; BENCHMARKS.md records the figures.
#   scripts/bench_host.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
scripts/setup.sh >/dev/null

work=$(mktemp -d)
trap 'kill -TERM ${HOST:-0} 2>/dev/null; wait ${HOST:-0} 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/rc.toml" <<RC
[sqlite_database.default]
type = "spin"
path = "$work/db.sqlite"
[key_value_store.default]
type = "spin"
path = "$work/kv.db"
[key_value_store.backups]
type = "spin"
path = "$work/backups_kv.db"
RC
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Load generators send thousands of requests a minute from one client: no rate limit here.
export SPIN_VARIABLE_API_TOKEN=bench-token SPIN_VARIABLE_RATE_LIMIT_PER_MINUTE=0 STOCKOPS_LOG=warn
start_host() {
    target/release/stockops up --listen "127.0.0.1:$port" --runtime-config "$work/rc.toml" --cache-dir "$work/aot" >/dev/null 2>"$work/host.log" &
    HOST=$!
}
wait_200() {
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ]; do sleep 0.005; done
}

# Cold start compiles every component into the cache; the warm start below is what a restart costs.
start_host; wait_200; kill -TERM $HOST; wait $HOST || true
t0=$(date +%s.%N); start_host; wait_200; t1=$(date +%s.%N)
startup_ms=$(python3 -c "print(f'{($t1-$t0)*1000:.0f}')")

echo "stockops host benchmark: GET /health, ${DURATION}s per run, $(nproc) cores"
echo "startup to first 200 (warm compile cache): ${startup_ms} ms"
printf '%-12s %12s %10s %10s %10s\n' connections 'req/s' 'p50 ms' 'p99 ms' errors
for c in 1 16 64; do
    out=$(wrk -t$(( c < 2 ? 1 : 2 )) -c$c -d${DURATION}s --latency "http://127.0.0.1:$port/health")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    to_ms() { python3 -c "import re,sys; n,u=re.fullmatch(r'([0-9.]+)(us|ms|s)',sys.argv[1]).groups(); print(f'{float(n)*{\"us\":0.001,\"ms\":1,\"s\":1000}[u]:.3f}')" "$1"; }
    p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
    errs=$(awk '/Non-2xx|Socket errors/ {s=s $0 "; "} END {print (s=="" ? "0" : s)}' <<<"$out")
    printf '%-12s %12s %10s %10s %10s\n' "$c" "$rps" "$p50" "$p99" "$errs"
done
