#!/usr/bin/env bash
# Training benchmark: stockops GBDT vs LightGBM 4.7.0 (from PyPI) with Qlib's Alpha158 LightGBM
# config, on the Alpha158 features of tests/fixtures/reference/qlib_us4 and on a synthetic set.
# Each run is its own process; both engines read the same prepared matrix (see the header of
# components/train-batch/examples/bench_train.rs). Prints the side-by-side table for BENCHMARKS.md.
#
# Environment: ROWS (synthetic training rows, 500000), FEATURES (158), THREADS ("1 $(nproc)"),
# SETS ("us4 us4-scaled synth"), LIGHTGBM_VENV (bench-out/venv-lightgbm), and, to skip the build
# and the venv (as on a machine without a network), BENCH_BIN and LIGHTGBM_LIB.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench-out/train
ROWS=${ROWS:-500000}
FEATURES=${FEATURES:-158}
THREADS=${THREADS:-"1 $(nproc)"}
SETS=${SETS:-"us4 us4-scaled synth"}
mkdir -p "$OUT"

if [ -z "${BENCH_BIN:-}" ]; then
    cargo build --release --locked -q -p train-batch --example bench_train
    BENCH_BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_train
fi
if [ -z "${LIGHTGBM_LIB:-}" ]; then
    VENV=${LIGHTGBM_VENV:-bench-out/venv-lightgbm}
    if ! compgen -G "$VENV/lib/python3*/site-packages/lightgbm/lib/lib_lightgbm.so" >/dev/null; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q lightgbm==4.7.0
    fi
    LIGHTGBM_LIB=$(compgen -G "$VENV/lib/python3*/site-packages/lightgbm/lib/lib_lightgbm.so" | head -n1)
fi

# Qlib's examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha158.yaml, LightGBM's names.
# `subsample` without `subsample_freq` is inert in LightGBM (bagging_freq 0), and so in ours.
cat >"$OUT/qlib.json" <<'JSON'
{"objective": "mse", "learning_rate": 0.2, "num_leaves": 210, "max_depth": 8,
 "lambda_l1": 205.6999, "lambda_l2": 580.9768, "colsample_bytree": 0.8879, "subsample": 0.8789,
 "num_boost_round": 1000, "early_stopping_rounds": 50, "seed": 0}
JSON
# The same with lambda_l1/l2 scaled by us4's 7,770 training rows over Qlib's csi300 ~510,000: with
# the full values no split of us4's z-scored labels passes lambda_l1 and both engines stop at round 1.
sed 's/"lambda_l1": 205.6999, "lambda_l2": 580.9768/"lambda_l1": 3.134, "lambda_l2": 8.852/' \
    "$OUT/qlib.json" >"$OUT/qlib-scaled.json"

runs=()
for set in $SETS; do
    case $set in
        us4) [ -f "$OUT/us4/test.y" ] || "$BENCH_BIN" prepare-us4 tests/fixtures/reference/qlib_us4 "$OUT/us4"
             runs+=("$OUT/us4 $OUT/qlib.json") ;;
        us4-scaled) [ -f "$OUT/us4/test.y" ] || "$BENCH_BIN" prepare-us4 tests/fixtures/reference/qlib_us4 "$OUT/us4"
             runs+=("$OUT/us4 $OUT/qlib-scaled.json") ;;
        synth) data="$OUT/synth${ROWS}x$FEATURES"
             [ -f "$data/test.y" ] || "$BENCH_BIN" prepare-synth "$data" "$ROWS" "$FEATURES"
             runs+=("$data $OUT/qlib.json") ;;
        *) echo "bench_train: unknown set $set" >&2; exit 2 ;;
    esac
done

results="$OUT/results.tsv"
: >"$results"
for run in "${runs[@]}"; do
    read -r data params <<<"$run"
    for t in $THREADS; do
        for engine in lightgbm ours; do
            "$BENCH_BIN" train "$engine" "$data" "$params" "$t" "$LIGHTGBM_LIB" | tee -a "$results"
        done
    done
done
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BENCH_BIN" report "$results"
