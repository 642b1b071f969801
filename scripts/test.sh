#!/usr/bin/env bash
# Runs every test: unit and golden tests of each crate, then the end-to-end suite, which boots the real
# host with the real components against embedded stores, a real redis-server and a real libSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --components-only
command -v redis-server >/dev/null || { echo "test: redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
# The production-backend suite runs against a real libSQL server.
if [ -z "${STOCKOPS_SQLD:-}" ] && ! command -v sqld >/dev/null; then
    STOCKOPS_SQLD=$(scripts/install_sqld.sh)
    export STOCKOPS_SQLD
fi
cargo test --release --locked --workspace
