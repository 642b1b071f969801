#!/usr/bin/env bash
# Multi-core scaling of native features and training, for a many-core machine (such as the lent
# 16-core one, which has no network): the same prebuilt binaries at 1, 2, 4, … threads.
#   - features: `bench_features` (Alpha158 f64 and QlibF32, the 47 indicators) on a seeded synthetic
#     Qlib universe (200 symbols × 2,500 days);
#   - training: `bench_train` (ours against LightGBM) on synthetic 50k × 158 at each thread count with
#     colsample 1 (the engines then grow the same trees, so the times compare the same work), then
#     500k × 158 with Qlib's parameters and with colsample 1 at the largest count.
# Results go to $RESULTS (default bench-out/scaling) as they come, so a run cut short keeps what it did.
#
# Env: BIN_DIR holds bench_train, bench_features and lib_lightgbm.so (built elsewhere: `cargo build
# --release -p train-batch --example bench_train; cargo build --release -p features --example
# bench_features`, and the .so from a LightGBM 4.7.0 wheel); THREADS (default "1 2 4 … nproc");
# BUDGET_S (default 480): a block is skipped once this many seconds have passed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:?BIN_DIR must hold bench_train, bench_features and lib_lightgbm.so}
RESULTS=${RESULTS:-bench-out/scaling}
BUDGET_S=${BUDGET_S:-480}
N=$(nproc)
if [ -z "${THREADS:-}" ]; then
    THREADS=1
    t=2; while [ "$t" -lt "$N" ]; do THREADS="$THREADS $t"; t=$((t * 2)); done
    THREADS="$THREADS $N"
fi
export LD_LIBRARY_PATH=$BIN_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
TRAIN=$BIN_DIR/bench_train
LIB=$BIN_DIR/lib_lightgbm.so
DATA=bench-out/train
mkdir -p "$RESULTS" "$DATA"
in_budget() { [ "$SECONDS" -lt "$BUDGET_S" ] || { echo "skipped (budget): $*" | tee -a "$RESULTS/skipped.txt"; false; }; }

echo "machine: $N cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee "$RESULTS/machine.txt"

SYN=bench-out/qlib_syn_200x2500
[ -f "$SYN/instruments/all.txt" ] ||
    python3 components/features/examples/bench_reference.py gen "$SYN" --symbols 200 --days 2500 --seed 7
for t in $THREADS; do
    in_budget "features $t" || break
    "$BIN_DIR/bench_features" --qlib "$SYN" --threads "$t" --repeat 3 | tee -a "$RESULTS/features.jsonl"
done

# Qlib's Alpha158 LightGBM parameters (as scripts/bench_train.sh writes them) and the same with colsample 1.
cat >"$DATA/qlib.json" <<'JSON'
{"objective": "mse", "learning_rate": 0.2, "num_leaves": 210, "max_depth": 8,
 "lambda_l1": 205.6999, "lambda_l2": 580.9768, "colsample_bytree": 0.8879, "subsample": 0.8789,
 "num_boost_round": 1000, "early_stopping_rounds": 50, "seed": 0}
JSON
sed 's/"colsample_bytree": 0.8879/"colsample_bytree": 1/' "$DATA/qlib.json" >"$DATA/qlib-cs1.json"
[ -f "$DATA/synth50000x158/test.y" ] || "$TRAIN" prepare-synth "$DATA/synth50000x158" 50000 158 >/dev/null
[ -f "$DATA/synth500000x158/test.y" ] || "$TRAIN" prepare-synth "$DATA/synth500000x158" 500000 158 >/dev/null

train() { # DATA PARAMS THREADS: both engines, LightGBM first
    for engine in lightgbm ours; do
        in_budget "train $engine $*" || return 1
        "$TRAIN" train "$engine" "$DATA/$1" "$DATA/$2.json" "$3" "$LIB" | tee -a "$RESULTS/train.tsv"
    done
}
for t in $THREADS; do train synth50000x158 qlib-cs1 "$t" || break; done
train synth500000x158 qlib-cs1 "$N"
train synth500000x158 qlib "$N"
half=$((N / 2))
[ "$half" -ge 2 ] && train synth500000x158 qlib-cs1 "$half"
"$TRAIN" report "$RESULTS/train.tsv" | tee "$RESULTS/train.md"
