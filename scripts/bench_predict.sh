#!/usr/bin/env bash
# Predict benchmark: stockops serving (`stockops up`, a fresh predict-component instance per request: alias
# lookup, cached model plan, feature rows from the store, scoring, TreeSHAP, prediction log) against a
# FastAPI + LightGBM baseline (uvicorn, 2 workers) serving the same 500-tree model with the newest date's
# features precomputed in memory (the baseline's most favourable case).
#
# Data: a deterministic synthetic universe of 300 symbols x 400 trading days derived from the us4 sample
# (scripts/bench_predict/gen_universe.py). Both models: Alpha158 features, LABEL0 z-scored per date,
# num_boost_round 500, early_stopping_rounds 0, num_leaves 31, learning_rate 0.05, seed 7; stockops trains
# with `stockops train --promote champion`, the baseline with LightGBM 4.7.0 on the features that
# `stockops features` exports.
#
# Cases under wrk (2 threads, 1/16/64 connections): one symbol; one symbol explained (top 10); the
# 300-symbol universe on the newest date. Then the in-component breakdown (timing_us) of sequential
# requests. Everything runs on 127.0.0.1 on free ports, in a temporary directory removed on exit.
#   scripts/bench_predict.sh [seconds per run, default 10]
# Env: STOCKOPS_BENCH_VENV (default ~/.cache/stockops-bench/venv), BENCH_SAMPLES (curl samples per case, 50).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
SAMPLES=${BENCH_SAMPLES:-50}
HERE=scripts/bench_predict
SEED=7
ROUNDS=500
TOKEN=bench-token
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

# The binaries are built by scripts/setup.sh; this script never builds them.
missing=()
for f in target/release/stockops target/wasm32-wasip2/wasm/{health,features,train_batch,predict,alert,backup}.wasm; do
    [ -f "$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench_predict: missing ${missing[*]}: run scripts/setup.sh first" >&2
    exit 1
fi

# ---- the baseline's Python environment (pinned, cached, rebuilt when the pins change) ----
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/stockops-bench
VENV=${STOCKOPS_BENCH_VENV:-$CACHE/venv}
if ! cmp -s "$HERE/requirements.txt" "$VENV/.bench-requirements.txt" 2>/dev/null; then
    echo "bench_predict: creating the venv $VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
    cp "$HERE/requirements.txt" "$VENV/.bench-requirements.txt"
fi
PY=$VENV/bin/python

work=$(mktemp -d "${TMPDIR:-/tmp}/bench_predict.XXXXXX")
HOST=0
UVI=0
cleanup() {
    for p in $HOST $UVI; do
        [ "$p" -gt 0 ] && kill -TERM "$p" 2>/dev/null || true
    done
    for p in $HOST $UVI; do
        [ "$p" -gt 0 ] && wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
# Load generators send thousands of requests a minute from one client: no rate limit here.
export SPIN_VARIABLE_API_TOKEN=$TOKEN SPIN_VARIABLE_RATE_LIMIT_PER_MINUTE=0 STOCKOPS_LOG=warn
SO="target/release/stockops"
RC="--runtime-config $work/rc.toml"
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }

# ---- data: the synthetic universe, ingested natively ----
"$PY" "$HERE/gen_universe.py" tests/fixtures/reference/us4_ohlcv.csv "$work/universe.csv" 300 400 20240601
$SO ingest --csv "$work/universe.csv" $RC
read -r TRAIN_FROM TRAIN_TO VALID_FROM VALID_TO TEST_FROM LATEST < <("$PY" - "$work/universe.csv" <<'EOF'
import sys, pandas as pd
d = sorted(pd.read_csv(sys.argv[1], usecols=["date"])["date"].unique())
# 60 bars of warm-up for the 60-day windows, then train / valid / test.
print(d[60], d[259], d[260], d[319], d[320], d[-1])
EOF
)
echo "segments: train $TRAIN_FROM..$TRAIN_TO, valid $VALID_FROM..$VALID_TO, test $TEST_FROM..$LATEST"

# ---- the same model on both sides ----
cat > "$work/job.toml" <<TOML
model = "bench-alpha158"
feature_set = "alpha158"
[segments]
train = { from = $TRAIN_FROM, to = $TRAIN_TO }
valid = { from = $VALID_FROM, to = $VALID_TO }
test = { from = $TEST_FROM, to = $LATEST }
[params]
num_boost_round = $ROUNDS
early_stopping_rounds = 0
num_leaves = 31
learning_rate = 0.05
seed = $SEED
TOML
t0=$(date +%s.%N)
$SO train --config "$work/job.toml" --promote champion $RC >"$work/train.out" 2>&1
t1=$(date +%s.%N)
echo "stockops: trained in $(secs "$t0" "$t1") s (all $(nproc) cores, feature computation included): $("$PY" "$HERE/report.py" trainsummary "$work/train.out")"

t0=$(date +%s.%N)
$SO features --set alpha158 --out "$work/alpha158.csv" $RC
$SO features --set label --out "$work/label.csv" $RC
t1=$(date +%s.%N)
echo "stockops features export (alpha158 + label, every symbol and date): $(secs "$t0" "$t1") s"
mkdir -p "$work/baseline"
"$PY" "$HERE/train_baseline.py" "$work/alpha158.csv" "$work/label.csv" "$work/baseline" \
    "$TRAIN_FROM" "$TRAIN_TO" "$VALID_FROM" "$VALID_TO" "$SEED" "$ROUNDS"

# ---- the two servers ----
port=$(free_port)
$SO up --listen "127.0.0.1:$port" $RC --cache-dir "$CACHE/aot" --no-cron >/dev/null 2>"$work/host.log" &
HOST=$!
bport=$(free_port)
BENCH_PREDICT_DIR="$work/baseline" OMP_NUM_THREADS=1 "$VENV/bin/uvicorn" --app-dir "$HERE" app:app \
    --host 127.0.0.1 --port "$bport" --workers 2 --log-level warning --no-access-log >"$work/uvicorn.log" 2>&1 &
UVI=$!
S="http://127.0.0.1:$port"
B="http://127.0.0.1:$bport"
wait_up() {  # url pid name
    for _ in $(seq 1 1200); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)
        case $code in 200 | 503) return 0 ;; esac
        kill -0 "$2" 2>/dev/null || { echo "bench_predict: $3 exited" >&2; cat "$work/host.log" "$work/uvicorn.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "bench_predict: $3 did not answer $1" >&2
    exit 1
}
wait_up "$S/health" $HOST "stockops up"
wait_up "$B/predict/SYN000" $UVI uvicorn

SYM=SYN000
BATCH_BODY="{\"date\": \"$LATEST\"}"
declare -A S_URL B_URL S_BODY B_BODY
S_URL=([one]="$S/api/predict/$SYM" [explain]="$S/api/predict/$SYM?explain=true&top=10" [batch]="$S/api/predict")
B_URL=([one]="$B/predict/$SYM" [explain]="$B/predict/$SYM?explain=true&top=10" [batch]="$B/predict_batch")
S_BODY=([batch]="$BATCH_BODY")
B_BODY=([batch]="$BATCH_BODY")

# One request of each (warms the plan cache and the feature cache), and the answers checked.
for c in one explain batch; do
    for side in S B; do
        declare -n urls=${side}_URL bodies=${side}_BODY
        args=()
        [ -n "${bodies[$c]:-}" ] && args=(-X POST -H 'content-type: application/json' -d "${bodies[$c]}")
        code=$(curl -s -o "$work/warm_${c}_$side.json" -w '%{http_code}' "${args[@]}" "${urls[$c]}")
        if [ "$code" != 200 ]; then
            echo "bench_predict: $side $c answered $code: $(head -c 400 "$work/warm_${c}_$side.json")" >&2
            exit 1
        fi
    done
done
"$PY" "$HERE/report.py" compare "$work/warm_batch_S.json" "$work/warm_batch_B.json"
"$PY" - "$work/warm_one_S.json" "$work/warm_batch_S.json" <<'EOF'
import json, sys
one, batch = (json.load(open(p)) for p in sys.argv[1:3])
p = one["predictions"][0]
print(f"stockops serves {one['model']} v{p['version']} ({p['variant']}) on {one['date']}; "
      f"batch answer: {len(batch['predictions'])} predictions, {len(batch['skipped'])} skipped")
EOF

# ---- the in-component breakdown: sequential requests, before any load ----
for c in one explain batch; do
    for side in S B; do
        declare -n urls=${side}_URL bodies=${side}_BODY
        name=$([ $side = S ] && echo stockops || echo baseline)
        args=()
        [ -n "${bodies[$c]:-}" ] && args=(-X POST -H 'content-type: application/json' -d "${bodies[$c]}")
        before=$(wc -l <"$work/host.log")
        for _ in $(seq 1 "$SAMPLES"); do
            curl -s -w '\n%{time_total}\n' "${args[@]}" "${urls[$c]}" >>"$work/bd_${c}_$name.txt"
        done
        sleep 0.2
        echo $(($(wc -l <"$work/host.log") - before)) >"$work/bd_${c}_$name.hostlog"
    done
done

# ---- load: wrk, each side alone ----
lua() {  # method body -> a wrk script that also counts status codes and keeps one non-2xx answer per thread
    local f
    f=$(mktemp "$work/wrk.XXXXXX.lua")
    cat >"$f" <<LUA
wrk.method = "$1"
$([ -n "$2" ] && printf 'wrk.body = [==[%s]==]\nwrk.headers["Content-Type"] = "application/json"' "$2")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; sample = nil end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 300 and sample == nil then sample = status .. " " .. string.sub(body or "", 1, 300) end
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
    local s = t:get("sample")
    if s ~= nil then io.write("SAMPLE " .. string.gsub(s, "\n", " ") .. "\n") end
  end
  for k, v in pairs(total) do io.write(string.format("STATUS %d %d\n", k, v)) end
end
LUA
    echo "$f"
}
cpu_ticks() {  # utime + stime of a process and its children (uvicorn's workers)
    local t=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat)))
    done
    echo $t
}
wait_idle() {  # pid -> seconds until it used under 10% of a core over 0.3 s (at most 60 s)
    local start prev now
    start=$(date +%s.%N)
    prev=$(cpu_ticks "$1")
    for _ in $(seq 1 200); do
        sleep 0.3
        now=$(cpu_ticks "$1")
        [ $((now - prev)) -le 3 ] && break
        prev=$now
    done
    secs "$start" "$(date +%s.%N)"
}
echo
echo "load: wrk ${DURATION}s per run, timeout 10s, $(nproc) cores shared by wrk and the server under test"
for c in one explain batch; do
    for conns in 1 16 64; do
        for side in S B; do
            declare -n urls=${side}_URL bodies=${side}_BODY
            name=$([ $side = S ] && echo stockops || echo baseline)
            method=GET
            [ -n "${bodies[$c]:-}" ] && method=POST
            script=$(lua $method "${bodies[$c]:-}")
            echo "  $name $c c=$conns" >&2
            before=$(wc -l <"$work/host.log")
            wrk -t$((conns < 2 ? 1 : 2)) -c"$conns" -d"${DURATION}s" --timeout 10s --latency -s "$script" \
                "${urls[$c]}" >"$work/wrk_${c}_${conns}_$name.txt" 2>&1 || true
            # The host keeps running requests whose client went away when wrk stopped: wait until it is idle so
            # they do not slow the next run, and record how long that took and what the host logged meanwhile.
            drain=$(wait_idle $([ $side = S ] && echo $HOST || echo $UVI))
            if [ $side = S ]; then
                echo "$(($(wc -l <"$work/host.log") - before)) $drain" >"$work/wrk_${c}_${conns}_$name.hostlog"
            fi
            kill -0 $HOST 2>/dev/null || { echo "bench_predict: stockops up died" >&2; tail -n 40 "$work/host.log" >&2; exit 1; }
        done
    done
done

echo
echo "stockops predict vs FastAPI + LightGBM $("$PY" -c 'import lightgbm; print(lightgbm.__version__)') (uvicorn, 2 workers, features precomputed), ${DURATION}s per run, $(nproc) cores"
"$PY" "$HERE/report.py" table "$work"
echo
"$PY" "$HERE/report.py" breakdown "$work"
echo
rows=$(sqlite3 "$work/db.sqlite" 'select count(*) from predictions' 2>/dev/null || echo '?')
echo "prediction log rows after the run: $rows; database $(du -h "$work/db.sqlite" | cut -f1)"
if [ -s "$work/host.log" ]; then
    echo "host log (STOCKOPS_LOG=warn): $(wc -l <"$work/host.log") lines; distinct messages (timestamp stripped):"
    sed -E 's/^[0-9][0-9T:.+Z-]* +//' "$work/host.log" | sort | uniq -c | sort -rn | head -n 10
else
    echo "host log (STOCKOPS_LOG=warn): empty"
fi
echo "host metrics after the run (failure and status counters):"
curl -s "$S/metrics" | grep -v '^#' | grep -i -E 'fail|error|trap|in_flight|_total' | grep -v _bucket | head -n 12 || true
if [ -s "$work/uvicorn.log" ]; then
    echo "uvicorn log: $(wc -l <"$work/uvicorn.log") lines"
    tail -n 5 "$work/uvicorn.log"
fi
