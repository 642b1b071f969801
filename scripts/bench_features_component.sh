#!/usr/bin/env bash
# The features component inside the host: one symbol (AAPL, 3,270 days of us4), Alpha158 requested over
# HTTP through `stockops up`, a fresh instance per request. "miss" is the first request after new bars:
# before each timed request the symbol's last bar is written again (untimed), which bumps its revision
# and drops its cached matrices, so the request reads the bars, computes the matrix and caches it (the
# component answers first and writes the 4 MB entry after).
# "hit" reads the cached matrix. Both answer the last month only, so the response size stays small.
# Prints median and p90 of N requests each.
#   scripts/bench_features_component.sh [N, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
scripts/setup.sh >/dev/null
work=$(mktemp -d)
trap 'kill -TERM ${HOST:-0} 2>/dev/null; wait ${HOST:-0} 2>/dev/null; rm -rf "$work"' EXIT
# Load generators send thousands of requests a minute from one client: no rate limit here.
export SPIN_VARIABLE_API_TOKEN=bench-token SPIN_VARIABLE_RATE_LIMIT_PER_MINUTE=0 STOCKOPS_LOG=warn
last_bar=$( (head -1 tests/fixtures/reference/us4_ohlcv.csv; grep '^AAPL,' tests/fixtures/reference/us4_ohlcv.csv | tail -1) )
run() {   # $1: miss or hit
    rm -f "$work"/*.sqlite "$work"/*.db
    printf '[sqlite_database.default]\ntype = "spin"\npath = "%s/db.sqlite"\n[key_value_store.default]\ntype = "spin"\npath = "%s/kv.db"\n[key_value_store.backups]\ntype = "spin"\npath = "%s/backups_kv.db"\n' "$work" "$work" "$work" > "$work/rc.toml"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    target/release/stockops up --listen "127.0.0.1:$port" \
        --runtime-config "$work/rc.toml" --cache-dir "$work/aot" --no-cron >/dev/null 2>"$work/host.log" &
    HOST=$!
    until curl -s -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.05; done
    curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/api/bars" -H "Authorization: Bearer bench-token" \
        -H 'content-type: text/csv' --data-binary @tests/fixtures/reference/us4_ohlcv.csv
    curl -sf -o /dev/null "http://127.0.0.1:$port/api/features/AAPL?set=alpha158&from=2013-02-01"   # warm-up
    for _ in $(seq 1 "$N"); do
        if [ "$1" = miss ]; then
            curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/api/bars" -H "Authorization: Bearer bench-token" \
                -H 'content-type: text/csv' --data-binary "$last_bar"
            sleep 0.05   # the previous miss's cache write (after its answer) ends before this one starts
        fi
        curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/api/features/AAPL?set=alpha158&from=2013-02-01"
    done | python3 -c 'import sys,statistics as s; v=sorted(float(x)*1000 for x in sys.stdin); print(f"median {s.median(v):7.1f} ms   p90 {v[int(len(v)*0.9)-1]:7.1f} ms")'
    kill -TERM $HOST; wait $HOST || true
}
echo "features component, AAPL Alpha158 (3,270 days of history, last month answered), $N requests"
printf 'miss (computed in the component): '; run miss
printf 'hit  (read from the KV cache):     '; run hit
