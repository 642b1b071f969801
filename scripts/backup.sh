#!/usr/bin/env bash
# Takes a backup into a directory, verifies it, and only then prunes the directory to the newest N archives.
# Two ways to take it:
#   - with the CLI (default): `stockops backup --out DIR` against the database the runtime config names,
#     then `stockops backup verify` on the new archive; works with the host stopped or running;
#   - through the running app (--via-api URL): POST /api/backups (stored, verified and retained by the app
#     itself); with --out it also downloads the archive for an off-site copy, checks its sha256, and
#     verifies it with the CLI when there is one.
# Archives are encrypted with SPIN_VARIABLE_BACKUP_KEY (environment, or .env beside spin.toml): keep a copy
# of that key elsewhere, without it no archive can be read.
#
#   scripts/backup.sh [--out DIR] [--runtime-config FILE] [--manifest spin.toml] [--keep N] [--bin PATH] [--user USER]
#   scripts/backup.sh --via-api URL [--token TOKEN] [--out DIR [--keep N]]
#
# The path of the new archive (or the id of the app's backup) is the last line on stdout.
set -euo pipefail
PROG=backup
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/ops.sh
. "$ROOT/scripts/lib/ops.sh"

OUT=""
RUNTIME_CONFIG=""
MANIFEST=$ROOT/spin.toml
KEEP=30
BIN=""
RUN_AS=""
VIA_API=""
TOKEN_ARG=""

usage() {
    cat <<'EOF'
Usage: scripts/backup.sh [options]

  --out DIR               where archives go (default: $STOCKOPS_BACKUP_DIR, else backups/ beside spin.toml)
  --runtime-config FILE   where the data is (default: $STOCKOPS_RUNTIME_CONFIG, else the only file in
                          runtime-config/, else runtime-config/local.toml)
  --manifest FILE         spin.toml (default: the one beside scripts/); its .env holds the backup key
  --keep N                keep the newest N archives in DIR, delete older ones once the new one is
                          verified (default: 30; 0 keeps everything)
  --bin PATH              the stockops binary (default: bin/stockops, else target/release/stockops, else PATH)
  --user USER             run the CLI as USER (the service's user, so files it creates stay its own)
  --via-api URL           take the backup through the running app: POST URL/api/backups (needs the API token);
                          with --out, also download and check the archive
  --token TOKEN           API token for --via-api (default: $SPIN_VARIABLE_API_TOKEN, else .env)
  -h, --help              this help
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        --runtime-config) RUNTIME_CONFIG=${2:?--runtime-config needs a file}; shift 2 ;;
        --manifest|-f) MANIFEST=${2:?--manifest needs a file}; shift 2 ;;
        --keep) KEEP=${2:?--keep needs a number}; shift 2 ;;
        --bin) BIN=${2:?--bin needs a path}; shift 2 ;;
        --user) RUN_AS=${2:?--user needs a name}; shift 2 ;;
        --via-api) VIA_API=${2:?--via-api needs a URL}; shift 2 ;;
        --token) TOKEN_ARG=${2:?--token needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
[[ "$KEEP" =~ ^[0-9]+$ ]] || die "--keep wants a number"
APP_DIR=$(cd "$(dirname "$MANIFEST")" && pwd)
OUT_GIVEN=${OUT:+1}
OUT=${OUT:-${STOCKOPS_BACKUP_DIR:-$APP_DIR/backups}}

# Runs the stockops CLI, as --user when given.
stockops_cli() {
    if [ -z "$RUN_AS" ] || [ "$RUN_AS" = "$(id -un)" ]; then
        "$BIN" "$@"
    elif [ "$(id -u)" = 0 ]; then
        runuser -u "$RUN_AS" -- "$BIN" "$@"
    else
        sudo -u "$RUN_AS" -- "$BIN" "$@"
    fi
}

# Deletes archives beyond the newest KEEP in OUT. Backup ids start with their UTC time, so the names sort
# by age; the archive just made is the newest and is never among those deleted.
prune() {
    local keep=$1 just_made=$2
    [ "$keep" -gt 0 ] || return 0
    local archives=()
    shopt -s nullglob
    archives=("$OUT"/stockops-backup-*.sobk)
    shopt -u nullglob
    local n=${#archives[@]}
    [ "$n" -gt "$keep" ] || { log "$n archive(s) in $OUT, keeping up to $keep: nothing to prune"; return 0; }
    local i
    for ((i = 0; i < n - keep; i++)); do
        [ "${archives[$i]}" = "$just_made" ] && continue
        rm -f -- "${archives[$i]}"
        log "pruned ${archives[$i]}"
    done
}

# The backup key must reach the CLI: from the environment or the .env beside spin.toml (not printed).
check_backup_key() {
    [ -n "${SPIN_VARIABLE_BACKUP_KEY:-}" ] && return
    if [ -e "$APP_DIR/.env" ] && [ ! -r "$APP_DIR/.env" ]; then
        die "$APP_DIR/.env is not readable by $(id -un): run as root or with --user of the service"
    fi
    [ -n "$RUN_AS" ] && return   # readable by that user, perhaps not by this one: the CLI will say
    env_file_has "$APP_DIR/.env" SPIN_VARIABLE_BACKUP_KEY \
        || die "no backup key: set SPIN_VARIABLE_BACKUP_KEY in the environment or in $APP_DIR/.env"
}

backup_with_cli() {
    BIN=${BIN:-$(find_stockops_bin "$ROOT")}
    RUNTIME_CONFIG=${RUNTIME_CONFIG:-$(default_runtime_config "$ROOT")}
    [ -f "$MANIFEST" ] || die "no manifest at $MANIFEST"
    [ -f "$RUNTIME_CONFIG" ] || die "no runtime config at $RUNTIME_CONFIG"
    check_backup_key
    mkdir -p "$OUT"
    [ -z "$RUN_AS" ] || [ "$(id -u)" != 0 ] || chown "$RUN_AS" "$OUT"
    log "backing up (runtime config $RUNTIME_CONFIG) into $OUT"
    # The CLI prints the new archive's path on the last line of stdout; its progress goes to stderr.
    local made
    made=$(stockops_cli backup --out "$OUT" -f "$MANIFEST" --runtime-config "$RUNTIME_CONFIG" | tail -n 1) \
        || die "stockops backup failed"
    [ -f "$made" ] || die "stockops backup did not leave an archive (last line: ${made:-nothing})"
    log "verifying $made"
    # verify finds the key the way the backup did: through the manifest (.env beside it) or the environment.
    if ! stockops_cli backup verify "$made" -f "$MANIFEST" --runtime-config "$RUNTIME_CONFIG" >&2; then
        # Renamed out of the archive pattern, so neither pruning nor a restore takes it for a good one.
        mv -f "$made" "$made.unverified"
        die "$made does not verify: kept as $made.unverified, nothing pruned"
    fi
    log "verified: $made ($(du -h "$made" | cut -f1))"
    prune "$KEEP" "$made"
    echo "$made"
}

backup_via_api() {
    command -v curl >/dev/null || die "curl is needed"
    local url=${VIA_API%/}
    load_token "$TOKEN_ARG" "$ROOT"
    [ -n "$TOKEN" ] || die "--via-api needs the API token: --token, SPIN_VARIABLE_API_TOKEN or .env"
    log "POST $url/api/backups"
    local out code body
    # A backup takes as long as the database is large: allow the host's own per-request limit (5 min).
    out=$(curl_auth -sS --max-time 330 -X POST -w '\n%{http_code}' "$url/api/backups") \
        || die "$url does not answer"
    code=$(printf '%s' "$out" | tail -n 1)
    body=$(printf '%s' "$out" | sed '$d')
    if [ "$code" != 201 ] && [ "$code" != 200 ]; then
        die "HTTP $code: $(printf '%s' "$body" | python3 -c 'import json,sys
try:
    e = json.load(sys.stdin)["error"]; print(e.get("code"), e.get("message"), sep=": ")
except Exception:
    print("(no error body)")')"
    fi
    # First line on stdout: "ID SHA256" for this script; the rest, for people, on stderr.
    local parsed id sha
    parsed=$(printf '%s' "$body" | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = d.get("record", d)
print(r.get("id") or "", r.get("sha256") or "-")
say = lambda m: print("backup: " + m, file=sys.stderr)
say("%s %s, %s bytes" % (r.get("id"), r.get("status"), r.get("size_bytes")))
if d.get("pruned"):
    say("pruned by the app (backup_retention_days): " + ", ".join(map(str, d["pruned"])))
if d.get("prune_error"):
    say("the app stopped pruning: %s" % d["prune_error"])') || die "the answer is not the expected JSON"
    read -r id sha <<< "$parsed"
    [ -n "$id" ] || die "the answer has no backup id"
    if [ -z "$OUT_GIVEN" ]; then echo "$id"; return; fi

    # An off-site copy: download the archive, check it against the sha256 the app recorded, verify it.
    mkdir -p "$OUT"
    local file=$OUT/stockops-backup-$id.sobk
    curl_auth -sS --fail --max-time 600 -o "$file.part" "$url/api/backups/$id/archive" \
        || { rm -f "$file.part"; die "downloading the archive of $id failed"; }
    if [ "$sha" != - ] && [ "$(sha256sum "$file.part" | cut -d' ' -f1)" != "$sha" ]; then
        rm -f "$file.part"
        die "the downloaded archive's sha256 differs from the app's record: deleted"
    fi
    mv -f "$file.part" "$file"
    BIN=${BIN:-$(find_stockops_bin "$ROOT" 2>/dev/null || true)}
    if [ -n "$BIN" ] && [ -x "$BIN" ]; then
        check_backup_key
        if ! stockops_cli backup verify "$file" -f "$MANIFEST" >&2; then
            mv -f "$file" "$file.unverified"
            die "$file does not verify: kept as $file.unverified, nothing pruned"
        fi
        log "downloaded and verified: $file"
    else
        log "downloaded $file (sha256 matches; no stockops binary here to verify it fully)"
    fi
    prune "$KEEP" "$file"
    echo "$file"
}

if [ -n "$VIA_API" ]; then backup_via_api; else backup_with_cli; fi
