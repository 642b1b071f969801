#!/usr/bin/env bash
# Regenerates components/train-batch/tests/fixtures/lightgbm_parity.{csv,json} with LightGBM 4.7.0 from PyPI
# (a venv under bench-out/, shared with scripts/bench_train.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LIGHTGBM_VENV:-bench-out/venv-lightgbm}
if ! "$VENV/bin/python" -c 'import lightgbm' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q lightgbm==4.7.0 numpy
fi
"$VENV/bin/python" scripts/make_lightgbm_fixture.py components/train-batch/tests/fixtures
