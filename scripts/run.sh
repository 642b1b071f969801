#!/usr/bin/env bash
# The main job on embedded defaults: set up, serve the app with `stockops up` on 127.0.0.1 (SQLite files
# under .spin/), ingest the bundled sample bars, train a model on their Alpha158 features, promote it to
# champion, print example requests and their answers (predictions with TreeSHAP explanations), and keep
# serving until Ctrl-C.
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
echo; echo "\$ curl -sS -X POST $BASE/api/train -H \"Authorization: Bearer \$SPIN_VARIABLE_API_TOKEN\" -d @scripts/sample_job.json"
JOB=$(curl -sS -X POST "$BASE/api/train" -H "Authorization: Bearer $SPIN_VARIABLE_API_TOKEN" -d @scripts/sample_job.json)
echo "$JOB" | python3 -c 'import json, sys
j = json.load(sys.stdin)
print(json.dumps({k: j.get(k) for k in ("id", "model", "version", "status", "error")}, indent=1))
print("test metrics:", json.dumps(j.get("result", {}).get("metrics", {}).get("test")))'
VERSION=$(echo "$JOB" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
show "curl -sS -X PUT $BASE/api/models/us4-alpha158/aliases/champion -H \"Authorization: Bearer \$SPIN_VARIABLE_API_TOKEN\" -d '{\"version\": $VERSION, \"reason\": \"run.sh\"}'"
show "curl -sS '$BASE/api/predict/AAPL?explain=true&top=5' | python3 -m json.tool"
show "curl -sS -X POST $BASE/api/predict -d '{}' | python3 -c 'import json,sys; a=json.load(sys.stdin); [print(p[\"rank\"], p[\"symbol\"], p[\"date\"], round(p[\"score\"], 6)) for p in a[\"predictions\"]]'"
echo
echo "stockops is serving on $BASE (Ctrl-C stops it). The API token is in .env."
wait $HOST
