#!/usr/bin/env bash
# The main job on embedded defaults: set up, serve the app with `stockops up` on 127.0.0.1 (SQLite files
# under .spin/), ingest the bundled sample bars, print example requests and their answers, and keep
# serving until Ctrl-C. (Training and prediction join this job with their issues.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
set -a; . ./.env; set +a
LISTEN=${STOCKOPS_LISTEN:-127.0.0.1:3000}
BASE="http://$LISTEN"
target/release/stockops up --listen "$LISTEN" --runtime-config runtime-config/local.toml &
HOST=$!
trap 'kill -TERM $HOST 2>/dev/null; wait $HOST 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health" || true)
    [ "$code" = 200 ] || [ "$code" = 503 ] && break
    sleep 0.2
done

show() { echo; echo "\$ $1"; eval "$1"; echo; }
show "curl -sS -X POST $BASE/api/bars -H \"Authorization: Bearer \$SPIN_VARIABLE_API_TOKEN\" -H 'content-type: text/csv' --data-binary @tests/fixtures/reference/us4_ohlcv.csv"
show "curl -sS '$BASE/api/bars/AAPL?from=2013-02-25'"
show "curl -sS '$BASE/api/features/AAPL?set=alpha158&from=2013-02-28&format=csv' | cut -c1-160"
show "curl -sS $BASE/health | python3 -m json.tool"
show "curl -sS $BASE/metrics | grep -v '^#' | head -n 8"
show "curl -sS -X POST $BASE/api/predict -H \"Authorization: Bearer \$SPIN_VARIABLE_API_TOKEN\""
echo
echo "stockops is serving on $BASE (Ctrl-C stops it). The API token is in .env."
wait $HOST
