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
# One build per component: built together, cargo would unify the `component` feature of the component
# crates that others link as libraries, and their Spin exports would clash. Those crates are rlibs and
# become components through `cargo rustc --crate-type cdylib`, as in spin.toml's build commands.
for c in health; do
    cargo build --locked --target wasm32-wasip2 --profile wasm -p "$c"
done
for c in features train-batch predict alert backup; do
    cargo rustc --locked --target wasm32-wasip2 --profile wasm -p "$c" --crate-type cdylib
done
# A test-only component that traps on purpose (the end-to-end tests check the host survives it).
cargo build --locked --target wasm32-wasip2 --profile wasm -p trap-component

# Secrets for this machine: the API token and the backup passphrase (kept apart from the repository).
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
umask 077
touch .env
if ! grep -q '^SPIN_VARIABLE_API_TOKEN=' .env; then
    echo "SPIN_VARIABLE_API_TOKEN=$(secret)" >> .env
    echo "setup: wrote a new API token to .env"
fi
if ! grep -q '^SPIN_VARIABLE_BACKUP_KEY=' .env; then
    echo "SPIN_VARIABLE_BACKUP_KEY=$(secret)" >> .env
    echo "setup: wrote a new backup passphrase to .env (keep a copy elsewhere: archives cannot be read without it)"
fi
echo "setup: done (host: target/release/stockops)"
