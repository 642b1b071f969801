# shellcheck shell=bash
# Helpers shared by the operations scripts (deploy.sh, status.sh, backup.sh, restore.sh); sourced, never run.
# They work the same in the repository and in an installed prefix (deploy.sh copies scripts/ there), so
# "the root" is the directory above scripts/: the repository, or e.g. /opt/stockops.
# Nothing here prints a secret: tokens and keys are read into variables and passed to curl through a
# file descriptor, never on a command line (visible in ps) or in output.

# The directory above scripts/ (the repository or the install prefix).
ops_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# Messages go to stderr, prefixed with the script's name, so stdout stays for results.
log() { printf '%s: %s\n' "${PROG:-ops}" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "${PROG:-ops}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${PROG:-ops}" "$*" >&2; exit 1; }

# The `stockops` binary: $STOCKOPS_BIN, else the prefix's bin/, else the repository's release build, else PATH.
find_stockops_bin() {
    local root=$1
    if [ -n "${STOCKOPS_BIN:-}" ]; then echo "$STOCKOPS_BIN"; return; fi
    local c
    for c in "$root/bin/stockops" "$root/target/release/stockops"; do
        if [ -x "$c" ]; then echo "$c"; return; fi
    done
    command -v stockops || die "no stockops binary: build it (scripts/setup.sh) or pass --bin PATH"
}

# The runtime config to use when none is given: $STOCKOPS_RUNTIME_CONFIG (the host honours it too), else the
# only file under ROOT/runtime-config/ (an install prefix holds one), else the embedded local.toml.
default_runtime_config() {
    local root=$1
    if [ -n "${STOCKOPS_RUNTIME_CONFIG:-}" ]; then echo "$STOCKOPS_RUNTIME_CONFIG"; return; fi
    local files=()
    shopt -s nullglob
    files=("$root"/runtime-config/*.toml)
    shopt -u nullglob
    if [ "${#files[@]}" -eq 1 ]; then echo "${files[0]}"; else echo "$root/runtime-config/local.toml"; fi
}

# Whether KEY=… is set in the dotenv FILE (the value is not read).
env_file_has() { [ -r "$1" ] && grep -q "^$2=." "$1"; }

# The value of KEY in the dotenv FILE (plain KEY=value lines, optional quotes), on stdout: callers capture
# it into a variable and never echo it.
env_file_value() {
    [ -r "$1" ] || return 1
    sed -n "s/^$2=//p" "$1" | tail -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'$/\1/"
}

# Sets TOKEN from, in order: the --token argument (given as $1), SPIN_VARIABLE_API_TOKEN, ROOT/.env.
# Empty when none (reads then go unauthenticated, which works unless require_auth_for_reads is on).
load_token() {
    local given=$1 root=$2
    TOKEN=$given
    [ -n "$TOKEN" ] || TOKEN=${SPIN_VARIABLE_API_TOKEN:-}
    [ -n "$TOKEN" ] || TOKEN=$(env_file_value "$root/.env" SPIN_VARIABLE_API_TOKEN 2>/dev/null || true)
}

# curl with the bearer token (when TOKEN is set) passed as a header file through a pipe, so it shows up
# neither in the process list nor in any output. Arguments are curl's.
curl_auth() {
    if [ -n "${TOKEN:-}" ]; then
        curl -H @<(printf 'Authorization: Bearer %s\n' "$TOKEN") "$@"
    else
        curl "$@"
    fi
}

# The backends a runtime config names, one per line: `KIND LABEL TYPE WHERE` (KIND sqlite|kv; WHERE is a
# URL with any password or token left out, or an absolute file path resolved as the host does: relative
# to the config file's directory).
runtime_config_backends() {
    python3 - "$1" <<'PY'
import os, sys, tomllib
from urllib.parse import urlsplit
path = sys.argv[1]
with open(path, "rb") as f:
    cfg = tomllib.load(f)
base = os.path.dirname(os.path.abspath(path))
def where(section):
    if "url" in section:
        u = urlsplit(section["url"])
        netloc = u.hostname or ""
        if u.port:
            netloc += f":{u.port}"
        if u.password or u.username:
            netloc = "***@" + netloc          # never show credentials
        return u._replace(netloc=netloc).geturl()
    if "path" in section:
        return os.path.normpath(os.path.join(base, section["path"]))
    return "(default)"
for kind, key in (("sqlite", "sqlite_database"), ("kv", "key_value_store")):
    for label, section in cfg.get(key, {}).items():
        print(kind, label, section.get("type", "?"), where(section))
PY
}

# The Redis URLs (with credentials, for redis-cli) a runtime config uses, one per line, deduplicated.
runtime_config_redis_urls() {
    python3 - "$1" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    cfg = tomllib.load(f)
seen = []
for section in cfg.get("key_value_store", {}).values():
    url = section.get("url", "")
    if section.get("type") == "redis" and url not in seen:
        seen.append(url)
print("\n".join(seen))
PY
}

# PING a Redis URL with a minimal RESP exchange in Python (AUTH when the URL has a password, percent-decoded
# as the host's Redis client does; TLS for rediss://). Not redis-cli: it would put the password on a
# command line, visible to every user in ps. Prints the reply (PONG) or the error; exit 0 only on PONG.
redis_ping() {
    python3 - "$1" <<'PY'
import socket, ssl, sys
from urllib.parse import urlsplit, unquote
u = urlsplit(sys.argv[1])
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        b = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out
try:
    s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=5)
    if u.scheme == "rediss":
        s = ssl.create_default_context().wrap_socket(s, server_hostname=u.hostname)
    f = s.makefile("rb")
    if u.password:
        auth = (unquote(u.username), unquote(u.password)) if u.username else (unquote(u.password),)
        s.sendall(cmd("AUTH", *auth))
        line = f.readline().decode(errors="replace").strip()
        if line != "+OK":
            print("AUTH refused: " + (line.lstrip("-") or "no reply")); sys.exit(1)
    s.sendall(cmd("PING"))
    line = f.readline().decode(errors="replace").strip()
    print(line.lstrip("+-") or "no reply")
    sys.exit(0 if line == "+PONG" else 1)
except (OSError, ValueError) as e:
    print(e); sys.exit(1)
PY
}

# Whether systemd manages this machine (not the case in most containers, even when systemctl is installed).
have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

# The base URL an address to listen on is reachable at from this machine (a wildcard becomes loopback).
listen_to_url() {
    local addr=$1
    case "$addr" in
        0.0.0.0:*) addr="127.0.0.1:${addr#0.0.0.0:}" ;;
        "[::]:"*) addr="[::1]:${addr#\[::\]:}" ;;
    esac
    echo "http://$addr"
}
