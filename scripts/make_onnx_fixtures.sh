#!/usr/bin/env bash
# Regenerates the ONNX fixtures under components/predict/tests/fixtures/onnx/ with pinned
# LightGBM, XGBoost, scikit-learn and onnxruntime, in a venv under target/ (gitignored).
# The fixtures are checked in: this is only needed to remake them.
#
# To also score our own exported model with onnxruntime, export it first:
#   REGENERATE=1 cargo test --release -p predict --lib model::tests::regenerate_stockops_fixture
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/onnx-fixtures-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    numpy==2.3.5 \
    scikit-learn==1.7.2 \
    lightgbm==4.7.0 \
    xgboost==3.1.2 \
    onnx==1.19.1 \
    onnxruntime==1.23.2 \
    onnxmltools==1.16.0 \
    skl2onnx==1.20.0
"$VENV/bin/python" scripts/make_onnx_fixtures.py components/predict/tests/fixtures/onnx
