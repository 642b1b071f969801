#!/usr/bin/env bash
# Sets up a fresh machine: the wasm target, the `stockops` host, the six components, and a .env holding
# a random API token (the secret variable api_token) when there is none yet.
#   scripts/setup.sh [--components-only]   (the tests build their own host: `cargo test` builds it with
#                                           the dev-dependencies' features, a different build from this one)
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null

# spin.toml names the components under ./target: when the build goes elsewhere, point ./target at it.
if [ -n "${CARGO_TARGET_DIR:-}" ] && [ "$(realpath -m "$CARGO_TARGET_DIR")" != "$(realpath -m target)" ]; then
    mkdir -p "$CARGO_TARGET_DIR"
    if [ -d target ] && [ ! -L target ]; then
        echo "setup: ./target is a directory but CARGO_TARGET_DIR=$CARGO_TARGET_DIR; unset one of them" >&2
        exit 1
    fi
    ln -sfn "$(realpath "$CARGO_TARGET_DIR")" target
fi

if [ "${1:-}" != --components-only ]; then
    echo "setup: building the host (release)"
    cargo build --release --locked -p stockops
fi
echo "setup: building the components (wasm32-wasip2)"
cargo build --locked --target wasm32-wasip2 --profile wasm \
    -p health -p features -p train-batch -p predict -p alert -p backup
# A test-only component that traps on purpose (the end-to-end tests check the host survives it).
cargo build --locked --target wasm32-wasip2 --profile wasm -p trap-component

if [ ! -f .env ]; then
    umask 077
    echo "SPIN_VARIABLE_API_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" > .env
    echo "setup: wrote .env with a new API token"
fi
echo "setup: done (host: target/release/stockops)"
