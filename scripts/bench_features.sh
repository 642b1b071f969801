#!/usr/bin/env bash
# Feature-engine benchmark (issue 3, "Fast, in a benchmark"): stockops natively (1 thread and all
# threads) vs pyqlib 0.9.7's Alpha158 handler and TA-Lib 0.8.2's Python wrapper, on the same Qlib bin
# dirs: the us4 fixture and a seeded synthetic universe. Prints a table of seconds and speed-ups.
#
#   scripts/bench_features.sh [SYMBOLS] [DAYS]     (defaults 200 2500)
#
# Env: BENCH_DIR (default bench-out/, gitignored) holds the venv, the synthetic data and the JSON
# results; CARGO_TARGET_DIR as usual; REPEAT (default 3) runs per stockops/TA-Lib timing (best kept);
# SKIP_QLIB=1 leaves out pyqlib (its synthetic run takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SYMBOLS=${1:-200}
DAYS=${2:-2500}
REPEAT=${REPEAT:-3}
OUT=${BENCH_DIR:-$ROOT/bench-out}
VENV=$OUT/venv
US4=$ROOT/tests/fixtures/reference/qlib_us4
SYN=$OUT/qlib_syn_${SYMBOLS}x${DAYS}
PY=$ROOT/components/features/examples/bench_reference.py
mkdir -p "$OUT"

if ! "$VENV/bin/python" -c 'import talib, qlib' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q 'ta-lib==0.8.2' 'pyqlib==0.9.7'
fi

[ -f "$SYN/instruments/all.txt" ] || "$VENV/bin/python" "$PY" gen "$SYN" --symbols "$SYMBOLS" --days "$DAYS" --seed 7

cargo build -q --release -p features --example bench_features
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_features

RES=$OUT/results.jsonl
: >"$RES"
for DATA in us4:"$US4" syn:"$SYN"; do
    NAME=${DATA%%:*} DIR=${DATA#*:}
    for T in 1 0; do
        echo "stockops $NAME threads=$T" >&2
        "$BIN" --qlib "$DIR" --threads "$T" --repeat "$REPEAT" | sed "s/^{/{\"data\":\"$NAME\",\"engine\":\"stockops\",/" >>"$RES"
    done
    echo "talib $NAME" >&2
    "$VENV/bin/python" "$PY" talib "$DIR" --repeat "$REPEAT" | sed "s/^{/{\"data\":\"$NAME\",/" >>"$RES"
    if [ "${SKIP_QLIB:-0}" != 1 ]; then
        for K in 1 "$(nproc)"; do
            echo "pyqlib $NAME kernels=$K" >&2
            "$VENV/bin/python" "$PY" qlib "$DIR" --kernels "$K" 2>>"$OUT/pyqlib.log" | tail -n 1 | sed "s/^{/{\"data\":\"$NAME\",/" >>"$RES"
        done
    fi
done

"$VENV/bin/python" - "$RES" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def get(data, engine, key, **match):
    for r in rows:
        if r["data"] == data and r["engine"] == engine and all(r.get(k) == v for k, v in match.items()):
            return r.get(key)
print("| data | work | engine | seconds | stockops speed-up |")
print("|---|---|---|---|---|")
for data in ["us4", "syn"]:
    s1 = get(data, "stockops", "alpha158_s", threads=1)
    sn = [r for r in rows if r["data"] == data and r["engine"] == "stockops" and r["threads"] != 1]
    sym = get(data, "stockops", "symbols", threads=1)
    days = get(data, "stockops", "rows", threads=1)
    label = f"{data} ({sym} sym, {days} rows)"
    q1 = get(data, "pyqlib", "alpha158_s", kernels=1)
    qn = [r for r in rows if r["data"] == data and r["engine"] == "pyqlib" and r["kernels"] != 1]
    def ratio(ref, t):
        return f"{ref / t:,.0f}×" if ref and t else "–"
    print(f"| {label} | Alpha158+LABEL0 | stockops 1 thread | {s1:.4f} | {ratio(q1, s1)} vs pyqlib 1 kernel |")
    for r in sn:
        print(f"| {label} | Alpha158+LABEL0 | stockops {r['threads']} threads | {r['alpha158_s']:.4f} | {ratio(q1, r['alpha158_s'])} vs pyqlib 1 kernel |")
    s1f = get(data, "stockops", "alpha158_qlib_f32_s", threads=1)
    print(f"| {label} | Alpha158+LABEL0 (QlibF32) | stockops 1 thread | {s1f:.4f} | {ratio(q1, s1f)} vs pyqlib 1 kernel |")
    if q1:
        print(f"| {label} | Alpha158+LABEL0 | pyqlib kernels=1 | {q1:.2f} | |")
    for r in qn:
        print(f"| {label} | Alpha158+LABEL0 | pyqlib kernels={r['kernels']} | {r['alpha158_s']:.2f} | {ratio(r['alpha158_s'], sn[0]['alpha158_s']) if sn else '–'} (stockops all threads) |")
    load = get(data, "stockops", "load_s", threads=1)
    print(f"| {label} | bin load | stockops 1 thread | {load:.4f} | |")
    i1 = get(data, "stockops", "indicators_s", threads=1)
    ta = get(data, "talib", "indicators_s")
    print(f"| {label} | 47 indicators | stockops 1 thread | {i1:.4f} | {ta / i1:.2f}× vs TA-Lib |")
    for r in sn:
        print(f"| {label} | 47 indicators | stockops {r['threads']} threads | {r['indicators_s']:.4f} | {ta / r['indicators_s']:.2f}× vs TA-Lib |")
    print(f"| {label} | 47 indicators | TA-Lib 0.8.2 (Python, 1 thread) | {ta:.4f} | |")
EOF
