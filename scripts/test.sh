#!/usr/bin/env bash
# Runs every test: unit and golden tests of each crate, then the end-to-end suite, which boots the real
# host with the real components against embedded stores and against a real redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --components-only
command -v redis-server >/dev/null || { echo "test: redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
cargo test --release --locked --workspace
