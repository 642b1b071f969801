#!/usr/bin/env bash
# Restores a backup archive (stockops-backup-<id>.sobk) over the database the runtime config names, carefully:
#   1. verifies the archive completely (`stockops backup verify`) before anything else;
#   2. refuses while the service or a `stockops up` process is running — a writer racing the restore would
#      leave a mix of old and new data — unless --stop-service (stop it, restore, start it) or --force;
#   3. asks for confirmation unless --yes;
#   4. takes a safety backup of the current data (unless --no-safety-backup), so the restore can be undone;
#   5. runs `stockops restore FILE`, then checks /health when a URL is given (or the service was restarted).
#
#   scripts/restore.sh FILE [--runtime-config FILE] [--manifest spin.toml] [--bin PATH] [--user USER]
#                      [--yes] [--force] [--stop-service] [--no-safety-backup] [--safety-dir DIR]
#                      [--url URL] [--service stockops.service]
#
# A backup still stored in the app can also be restored through it: POST /api/backups/{id}/restore.
set -euo pipefail
PROG=restore
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/ops.sh
. "$ROOT/scripts/lib/ops.sh"

ARCHIVE=""
RUNTIME_CONFIG=""
MANIFEST=$ROOT/spin.toml
BIN=""
RUN_AS=""
YES=0
FORCE=0
STOP_SERVICE=0
SAFETY=1
SAFETY_DIR=""
URL=""
SERVICE=stockops.service

usage() {
    cat <<'EOF'
Usage: scripts/restore.sh FILE [options]

  --runtime-config FILE   the data to replace (default: $STOCKOPS_RUNTIME_CONFIG, else the only file in
                          runtime-config/, else runtime-config/local.toml)
  --manifest FILE         spin.toml (default: the one beside scripts/); its .env holds the backup key
  --bin PATH              the stockops binary (default: bin/stockops, else target/release/stockops, else PATH)
  --user USER             run the CLI as USER (the service's user, so the files it writes stay its own)
  --yes                   do not ask for confirmation
  --stop-service          stop the systemd service first and start it again afterwards
  --force                 restore even though the service or a `stockops up` process is running (only when
                          you know it does not write this database)
  --no-safety-backup      do not back up the current data first (e.g. when it is unreadable)
  --safety-dir DIR        where the safety backup goes (default: backups/ beside spin.toml)
  --url URL               check /health there afterwards (default with --stop-service: http://127.0.0.1:3000)
  --service NAME          the systemd unit (default: stockops.service)
  -h, --help              this help
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --runtime-config) RUNTIME_CONFIG=${2:?--runtime-config needs a file}; shift 2 ;;
        --manifest|-f) MANIFEST=${2:?--manifest needs a file}; shift 2 ;;
        --bin) BIN=${2:?--bin needs a path}; shift 2 ;;
        --user) RUN_AS=${2:?--user needs a name}; shift 2 ;;
        --yes|-y) YES=1; shift ;;
        --force) FORCE=1; shift ;;
        --stop-service) STOP_SERVICE=1; shift ;;
        --no-safety-backup) SAFETY=0; shift ;;
        --safety-dir) SAFETY_DIR=${2:?--safety-dir needs a directory}; shift 2 ;;
        --url) URL=${2:?--url needs a URL}; shift 2 ;;
        --service) SERVICE=${2:?--service needs a unit name}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option: $1" ;;
        *) [ -z "$ARCHIVE" ] || die "one archive at a time (got $ARCHIVE and $1)"; ARCHIVE=$1; shift ;;
    esac
done
[ -n "$ARCHIVE" ] || { usage >&2; die "which archive? (a stockops-backup-<id>.sobk file)"; }
{ [ -f "$ARCHIVE" ] && [ -r "$ARCHIVE" ]; } || die "cannot read $ARCHIVE"
ARCHIVE=$(realpath "$ARCHIVE")
[ -f "$MANIFEST" ] || die "no manifest at $MANIFEST"
BIN=${BIN:-$(find_stockops_bin "$ROOT")}
RUNTIME_CONFIG=${RUNTIME_CONFIG:-$(default_runtime_config "$ROOT")}
[ -f "$RUNTIME_CONFIG" ] || die "no runtime config at $RUNTIME_CONFIG"
[ "$STOP_SERVICE" = 1 ] && URL=${URL:-http://127.0.0.1:3000}
STOPPED=0

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

verify_archive() {
    log "verifying $ARCHIVE"
    # Its stdout is what the archive holds (the manifest): shown before the confirmation.
    stockops_cli backup verify "$ARCHIVE" -f "$MANIFEST" --runtime-config "$RUNTIME_CONFIG" >&2 \
        || die "$ARCHIVE does not verify: nothing was changed"
}

# Whether anything may be writing the data: the systemd service (stopped after the confirmation with
# --stop-service), or a `stockops up` on this machine.
check_no_writers() {
    if have_systemd && systemctl is-active --quiet "$SERVICE"; then
        if [ "$STOP_SERVICE" = 1 ]; then
            log "$SERVICE is active: it will be stopped before the restore and started after it"
            return
        fi
        [ "$FORCE" = 1 ] && { warn "$SERVICE is active: restoring anyway (--force)"; return; }
        die "$SERVICE is active: it keeps writing (requests, cron, metrics) while the data is replaced. Pass --stop-service to stop it for the restore, or stop it yourself"
    fi
    local pids
    pids=$(pgrep -f '(^|/)stockops up( |$)' | tr '\n' ' ' || true)
    [ -n "$pids" ] || return 0
    [ "$FORCE" = 1 ] && { warn "stockops up is running (pid ${pids% }): restoring anyway (--force)"; return; }
    die "stockops up is running (pid ${pids% }): stop it first, or pass --force if it uses other data"
}

stop_service() {
    if [ "$STOP_SERVICE" = 1 ] && have_systemd && systemctl is-active --quiet "$SERVICE"; then
        log "stopping $SERVICE"
        systemctl stop "$SERVICE"
        STOPPED=1
    fi
}

confirm() {
    echo "About to replace the data of $RUNTIME_CONFIG:" >&2
    runtime_config_backends "$RUNTIME_CONFIG" | sed 's/^/    /' >&2
    echo "with the contents of $ARCHIVE" >&2
    if [ "$SAFETY" = 1 ]; then echo "after a safety backup of the current data." >&2
    else echo "WITHOUT a safety backup (--no-safety-backup): the current data cannot be brought back." >&2; fi
    [ "$YES" = 1 ] && return
    [ -t 0 ] || die "not a terminal, cannot ask: pass --yes to confirm"
    local answer
    read -r -p "Type 'restore' to go on: " answer
    [ "$answer" = restore ] || die "cancelled: nothing was changed"
}

# A backup of the data about to be replaced, through backup.sh (verified; nothing pruned).
safety_backup() {
    [ "$SAFETY" = 1 ] || { log "no safety backup (--no-safety-backup)"; return; }
    log "safety backup of the current data"
    local args=(--keep 0 --runtime-config "$RUNTIME_CONFIG" --manifest "$MANIFEST" --bin "$BIN")
    [ -n "$SAFETY_DIR" ] && args+=(--out "$SAFETY_DIR")
    [ -n "$RUN_AS" ] && args+=(--user "$RUN_AS")
    SAFETY_FILE=$("$ROOT/scripts/backup.sh" "${args[@]}" | tail -n 1) \
        || die "the safety backup failed: nothing was changed (--no-safety-backup skips it, e.g. when the data is unreadable)"
    log "safety backup: $SAFETY_FILE"
}

restore() {
    log "restoring $ARCHIVE"
    if ! stockops_cli restore "$ARCHIVE" -f "$MANIFEST" --runtime-config "$RUNTIME_CONFIG" >&2; then
        [ "$STOPPED" = 1 ] && warn "$SERVICE stays stopped: look at the data before starting it"
        die "restore failed${SAFETY_FILE:+; the data as it was is in $SAFETY_FILE}"
    fi
    log "restored"
}

restart_and_check() {
    if [ "$STOPPED" = 1 ]; then
        log "starting $SERVICE"
        systemctl start "$SERVICE"
    fi
    if [ -z "$URL" ]; then
        log "start the host and check it: scripts/health_check.sh --url URL"
        return
    fi
    # The host applies migrations and compiles components at start: give it a minute to answer.
    local rc=2 tries
    for tries in $(seq 30 -1 1); do
        rc=0
        "$ROOT/scripts/health_check.sh" --url "$URL" --runtime-config "$RUNTIME_CONFIG" >/dev/null 2>&1 || rc=$?
        if [ "$rc" != 2 ] || [ "$tries" = 1 ]; then break; fi
        sleep 2
    done
    "$ROOT/scripts/health_check.sh" --url "$URL" --runtime-config "$RUNTIME_CONFIG" || true
    [ "$rc" = 0 ] || die "restored, but $URL/health is not healthy (exit $rc)${SAFETY_FILE:+; the data as it was is in $SAFETY_FILE}"
    log "healthy at $URL"
}

SAFETY_FILE=""
verify_archive
check_no_writers
confirm
stop_service
safety_backup
restore
restart_and_check
