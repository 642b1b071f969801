#!/usr/bin/env bash
# Deploys stockops on this machine: checks prerequisites, runs the tests, builds the host and components,
# backs up the current database, installs everything into a prefix, (re)writes and restarts the systemd
# unit, and waits until /health says the new version is healthy. Any failing step stops the deploy.
#
#   scripts/deploy.sh [--prefix /opt/stockops] [--user stockops] [--runtime-config FILE]
#                     [--listen 127.0.0.1:3000] [--create-service] [--no-backup] [--skip-tests]
#                     [--skip-build] [--allow-degraded] [--health-timeout SECS] [--dry-run]
#
# Run it as the user who builds (cargo, rustup); the steps that need root (installing into the prefix,
# systemd) go through sudo unless it already runs as root. --dry-run prints every step and changes nothing.
set -euo pipefail
PROG=deploy
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/ops.sh
. "$REPO/scripts/lib/ops.sh"

PREFIX=/opt/stockops
SERVICE_USER=stockops
RUNTIME_CONFIG=""
LISTEN=127.0.0.1:3000
CREATE_SERVICE=0
BACKUP=1
TESTS=1
BUILD=1
STRICT_HEALTH=1
HEALTH_TIMEOUT=120
DRY_RUN=0
UNIT_NAME=stockops.service
UNIT_TEMPLATE=$REPO/deploy/systemd/stockops.service
# The operations scripts installed with the app (they work from the prefix as from the repository).
OPS_SCRIPTS=(health_check.sh status.sh backup.sh restore.sh)

usage() {
    cat <<EOF
Usage: scripts/deploy.sh [options]

Steps: prerequisites → scripts/test.sh → scripts/setup.sh (build) → backup of the current database →
install into PREFIX → systemd unit (with --create-service) → restart → health checks until healthy.

Options:
  --prefix DIR            install directory (default: /opt/stockops); data lives in DIR/.spin
  --user USER             system user the service runs as (default: stockops; created if missing)
  --runtime-config FILE   runtime config to install and run with (default: runtime-config/local.toml,
                          embedded SQLite files under DIR/.spin). For runtime-config/production.toml (libSQL
                          server + Redis) pass it explicitly, after replacing its placeholder URL and token
                          (better: keep the edited copy outside the repository and pass that).
  --listen ADDR           address the host listens on (default: 127.0.0.1:3000; put a reverse proxy in
                          front rather than listening on 0.0.0.0)
  --create-service        write $UNIT_NAME from deploy/systemd/stockops.service and enable it
  --no-backup             do not back up the current database before installing
  --skip-tests            do not run scripts/test.sh
  --skip-build            install what is already built (target/release/stockops, target/wasm32-wasip2/wasm)
  --allow-degraded        accept a degraded /health (e.g. a first deploy: no bars, no champion model yet);
                          by default the deploy waits for status ok (health_check.sh --strict)
  --health-timeout SECS   how long to wait for a healthy /health after the restart (default: 120)
  --dry-run               print what would be done, change nothing
  -h, --help              this help

Secrets (SPIN_VARIABLE_API_TOKEN, SPIN_VARIABLE_BACKUP_KEY) live in PREFIX/.env (0640, root:GROUP); a first
deploy writes new random ones there. They are never printed.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
        --user) SERVICE_USER=${2:?--user needs a name}; shift 2 ;;
        --runtime-config) RUNTIME_CONFIG=${2:?--runtime-config needs a file}; shift 2 ;;
        --listen) LISTEN=${2:?--listen needs an address}; shift 2 ;;
        --create-service) CREATE_SERVICE=1; shift ;;
        --no-backup) BACKUP=0; shift ;;
        --skip-tests) TESTS=0; shift ;;
        --skip-build) BUILD=0; shift ;;
        --allow-degraded) STRICT_HEALTH=0; shift ;;
        --health-timeout) HEALTH_TIMEOUT=${2:?--health-timeout needs seconds}; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

PREFIX=$(realpath -m "$PREFIX")
RUNTIME_CONFIG=${RUNTIME_CONFIG:-$REPO/runtime-config/local.toml}
RUNTIME_CONFIG=$(realpath -m "$RUNTIME_CONFIG")
# The runtime config keeps its file name inside the prefix; relative paths in it resolve from there.
INSTALLED_RC=$PREFIX/runtime-config/$(basename "$RUNTIME_CONFIG")
HEALTH_URL=$(listen_to_url "$LISTEN")
STATE_FILE=$PREFIX/DEPLOYED
BACKUP_DIR=$PREFIX/backups
NEW_BACKUP=""

step() { printf '\n== %s\n' "$*" >&2; }

# Prints a command, then runs it unless --dry-run.
run() {
    printf '+ %s\n' "$(printf '%q ' "$@")" >&2
    [ "$DRY_RUN" = 1 ] || "$@"
}

# Root's share of the work (installing, systemd): directly when already root, else through sudo.
SUDO=()
as_root() { run "${SUDO[@]}" "$@"; }

# The stockops CLI against the installed data runs as the service user, so any file it creates (SQLite
# WAL and shm files, backups) stays writable by the service.
as_service_user() {
    if [ "$(id -un)" = "$SERVICE_USER" ]; then
        "$@"
    elif [ "$(id -u)" = 0 ]; then
        runuser -u "$SERVICE_USER" -- "$@"
    else
        sudo -u "$SERVICE_USER" -- "$@"
    fi
}

# Every file spin.toml needs beside it, relative to it, one per line: each component's `source`, and the
# files its `files` entries map in (a {source = DIR} mapping, or a glob pattern). "missing PATH" for a
# source that is not there.
manifest_files() {
    python3 - "$REPO" <<'PY'
import glob, os, sys, tomllib
root = sys.argv[1]
with open(os.path.join(root, "spin.toml"), "rb") as f:
    m = tomllib.load(f)
def files_under(rel):
    path = os.path.join(root, rel)
    if os.path.isfile(path):
        return [rel]
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(path) for n in ns)
for c in m.get("component", {}).values():
    src = c.get("source")
    if isinstance(src, str):
        print(("file " if os.path.isfile(os.path.join(root, src)) else "missing ") + src)
    for entry in c.get("files", []):
        if isinstance(entry, dict):
            found = files_under(entry["source"]) if os.path.exists(os.path.join(root, entry["source"])) else []
            name = entry["source"]
        else:
            found = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, entry), recursive=True)
                           if os.path.isfile(p))
            name = entry
        print("\n".join("file " + f for f in found) if found else "missing " + name)
PY
}

check_prerequisites() {
    step "prerequisites"
    local missing=()
    local tools=(python3 curl install realpath)
    [ "$BUILD" = 1 ] && tools+=(cargo rustup)
    local t
    for t in "${tools[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
    [ "${#missing[@]}" -eq 0 ] || die "missing: ${missing[*]} (cargo and rustup: https://rustup.rs)"
    python3 -c 'import tomllib' 2>/dev/null || die "python3 ≥ 3.11 is needed (tomllib)"
    if [ "$TESTS" = 1 ]; then
        command -v redis-server >/dev/null \
            || die "the tests need redis-server (apt-get install redis-server), or pass --skip-tests"
    fi
    # setup.sh installs the wasm32-wasip2 target itself; say so when it is not there yet.
    if [ "$BUILD" = 1 ] && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        log "the wasm32-wasip2 target is not installed yet: scripts/setup.sh will add it"
    fi
    [ -f "$RUNTIME_CONFIG" ] || die "no runtime config at $RUNTIME_CONFIG"
    # A runtime config still holding production.toml's placeholders would start and then fail every request.
    if grep -q 'replace-with-your' "$RUNTIME_CONFIG"; then
        die "$RUNTIME_CONFIG still has a placeholder (replace-with-your-…): put your libSQL URL and token in a copy and pass that"
    fi
    runtime_config_backends "$RUNTIME_CONFIG" >/dev/null || die "$RUNTIME_CONFIG is not valid TOML"
    [[ "$LISTEN" =~ ^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]+$ ]] || die "--listen wants HOST:PORT, got $LISTEN"
    [[ "$HEALTH_TIMEOUT" =~ ^[0-9]+$ ]] || die "--health-timeout wants seconds"
    [ -f "$UNIT_TEMPLATE" ] || die "no unit template at $UNIT_TEMPLATE"
    case "$PREFIX" in /home/*|/root/*|/run/user/*)
        [ "$CREATE_SERVICE" = 1 ] && die "the unit's ProtectHome=yes hides $PREFIX from the service: install under /opt or /srv"
    esac

    # Root is needed to install as another user, into a directory we cannot write, or for systemd.
    local need_root=0
    [ "$(id -un)" = "$SERVICE_USER" ] || need_root=1
    [ "$CREATE_SERVICE" = 1 ] && need_root=1
    local probe=$PREFIX
    while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
    [ -w "$probe" ] || need_root=1
    if [ "$need_root" = 1 ] && [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "root is needed (install as $SERVICE_USER into $PREFIX) and sudo is missing: run as root"
        SUDO=(sudo)
        log "steps that need root will use sudo"
    fi
    log "ok: prefix $PREFIX, user $SERVICE_USER, runtime config $RUNTIME_CONFIG, listen $LISTEN"
}

run_tests() {
    step "tests (scripts/test.sh)"
    if [ "$TESTS" = 0 ]; then log "skipped (--skip-tests)"; return; fi
    run "$REPO/scripts/test.sh"
}

build() {
    step "build (scripts/setup.sh: host in release, components for wasm32-wasip2)"
    if [ "$BUILD" = 0 ]; then log "skipped (--skip-build): installing what is built"; else run "$REPO/scripts/setup.sh"; fi
    # Everything the install copies must be there, whoever built it (in a dry run, the build would make it).
    [ "$DRY_RUN" = 1 ] && [ "$BUILD" = 1 ] && return
    [ -x "$REPO/target/release/stockops" ] || die "no host binary at target/release/stockops"
    local f
    for f in "${OPS_SCRIPTS[@]}" lib/ops.sh; do
        [ -f "$REPO/scripts/$f" ] || die "scripts/$f is missing"
    done
    local missing
    missing=$(manifest_files | sed -n 's/^missing //p')
    [ -z "$missing" ] || die "spin.toml names what is not there (build it: scripts/setup.sh): ${missing//$'\n'/, }"
}

# Backs up the installed app's database with the installed binary when it has the backup command (it
# matches the data's schema), else with the new one; the archive is verified before the deploy goes on.
backup_current() {
    step "backup of the current database"
    if [ "$BACKUP" = 0 ]; then log "skipped (--no-backup)"; return; fi
    if [ ! -f "$PREFIX/spin.toml" ] || [ ! -x "$PREFIX/bin/stockops" ]; then
        log "nothing installed at $PREFIX yet: no backup to take"
        return
    fi
    local rc=$INSTALLED_RC
    if [ -f "$STATE_FILE" ]; then
        local previous
        previous=$(sed -n 's/^RUNTIME_CONFIG=//p' "$STATE_FILE" | tail -n 1)
        [ -n "$previous" ] && rc=$previous
    fi
    [ -f "$rc" ] || die "the installed runtime config $rc is missing: cannot find the data to back up (or pass --no-backup)"
    local bin=$PREFIX/bin/stockops
    if ! "$bin" backup --help >/dev/null 2>&1; then
        bin=$REPO/target/release/stockops
        log "the installed binary has no backup command: using the new build"
    fi
    if ! prefix_env_has SPIN_VARIABLE_BACKUP_KEY && [ -z "${SPIN_VARIABLE_BACKUP_KEY:-}" ]; then
        die "no SPIN_VARIABLE_BACKUP_KEY in $PREFIX/.env: add one (and keep a copy elsewhere), or pass --no-backup"
    fi
    install_dir 0750 "$BACKUP_DIR" "$SERVICE_USER"
    local cmd=("$bin" backup --out "$BACKUP_DIR" -f "$PREFIX/spin.toml" --runtime-config "$rc")
    printf '+ %s\n' "$(printf '%q ' "${cmd[@]}")" >&2
    if [ "$DRY_RUN" = 1 ]; then NEW_BACKUP="$BACKUP_DIR/stockops-backup-<id>.sobk"; return; fi
    # The CLI prints the archive's path on the last line of stdout.
    NEW_BACKUP=$(as_service_user "${cmd[@]}" | tail -n 1) || die "backup failed: deploy stopped (--no-backup skips it)"
    [ -f "$NEW_BACKUP" ] || die "backup failed: no archive (last line of its output: $NEW_BACKUP)"
    # verify reads the key as the backup did (the .env beside the manifest); its stdout is the archive's manifest.
    local verify=("$bin" backup verify "$NEW_BACKUP" -f "$PREFIX/spin.toml" --runtime-config "$rc")
    printf '+ %s\n' "$(printf '%q ' "${verify[@]}")" >&2
    as_service_user "${verify[@]}" >/dev/null || die "backup $NEW_BACKUP does not verify: deploy stopped"
    log "backup verified: $NEW_BACKUP"
}

# Whether PREFIX/.env sets KEY (it is readable by root and the service's group only: ask as root).
prefix_env_has() { "${SUDO[@]}" grep -q "^$1=." "$PREFIX/.env" 2>/dev/null; }

# Makes sure the service user exists (a system user without a shell or home of its own).
ensure_user() {
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        SERVICE_GROUP=$(id -gn "$SERVICE_USER")
        return
    fi
    SERVICE_GROUP=$SERVICE_USER
    as_root useradd --system --user-group --home-dir "$PREFIX" --no-create-home \
        --shell /usr/sbin/nologin "$SERVICE_USER"
}

# Root's install(1) options: files belong to OWNER (root unless said) and the service's group. Without
# root (a prefix of one's own, run as the service user) ownership stays as it is.
owner_opts() {
    if [ "${#SUDO[@]}" -gt 0 ] || [ "$(id -u)" = 0 ]; then echo "-o ${1:-root} -g ${2:-$SERVICE_GROUP}"; fi
}

# Installs one file atomically (a temporary copy renamed over the old one), so a running host or a
# restart never sees half a file and a running binary is replaced, not overwritten. One line per file.
#   install_file MODE SRC DEST [OWNER (root)] [GROUP (the service's)]
install_file() {
    local mode=$1 src=$2 dest=$3 owner=${4:-root} group=${5:-}
    local tmp opts
    tmp="$(dirname "$dest")/.$(basename "$dest").new"
    read -r -a opts <<< "$(owner_opts "$owner" "$group")"
    printf '+ install -m %s %s%s %s\n' "$mode" "${opts[*]:+${opts[*]} }" "$src" "$dest" >&2
    [ "$DRY_RUN" = 1 ] && return
    "${SUDO[@]}" install -m "$mode" "${opts[@]}" "$src" "$tmp"
    "${SUDO[@]}" mv -f "$tmp" "$dest"
}

# Creates a directory (once per run) with its mode and owner.
declare -A MADE_DIRS=()
install_dir() {
    local mode=$1 dir=$2 owner=${3:-root}
    [ -n "${MADE_DIRS[$dir]:-}" ] && return
    MADE_DIRS[$dir]=1
    local opts
    read -r -a opts <<< "$(owner_opts "$owner")"
    as_root install -d -m "$mode" "${opts[@]}" "$dir"
}

# Directories the service writes: PREFIX/.spin (compiled-component cache, Spin's default stores) and the
# directory of every embedded store's file in the runtime config, resolved as the host does: relative to
# the config file, here its installed copy.
data_dirs() {
    python3 - "$RUNTIME_CONFIG" "$INSTALLED_RC" "$PREFIX/.spin" <<'PY'
import os, sys, tomllib
src, installed, spin_dir = sys.argv[1:4]
with open(src, "rb") as f:
    cfg = tomllib.load(f)
dirs = {spin_dir}
for key in ("sqlite_database", "key_value_store"):
    for section in cfg.get(key, {}).values():
        if section.get("type") == "spin" and section.get("path"):
            path = os.path.join(os.path.dirname(installed), section["path"])
            dirs.add(os.path.dirname(os.path.normpath(path)))
print("\n".join(sorted(dirs)))
PY
}

# Writes PREFIX/.env with fresh secrets when it has none (never overwritten: archives need the same
# backup key to be read back), and keeps it readable by the service's group only.
ensure_secrets() {
    local env=$PREFIX/.env
    local secret_cmd='head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n"'
    local key
    for key in SPIN_VARIABLE_API_TOKEN SPIN_VARIABLE_BACKUP_KEY; do
        if [ "$DRY_RUN" = 0 ] && prefix_env_has "$key"; then continue; fi
        printf '+ append %s=<new random secret> to %s (if missing)\n' "$key" "$env" >&2
        [ "$DRY_RUN" = 1 ] && continue
        # The secret is generated and written by the same root shell: it never passes through this one.
        "${SUDO[@]}" sh -c "umask 077; printf '%s=%s\n' '$key' \"\$($secret_cmd)\" >> '$env'"
        log "wrote a new $key to $env"
        [ "$key" = SPIN_VARIABLE_BACKUP_KEY ] \
            && log "keep a copy of SPIN_VARIABLE_BACKUP_KEY outside this machine: archives cannot be read without it"
    done
    if [ "${#SUDO[@]}" -gt 0 ] || [ "$(id -u)" = 0 ]; then
        as_root chown "root:$SERVICE_GROUP" "$env"
    fi
    as_root chmod 0640 "$env"
}

install_app() {
    step "install into $PREFIX"
    ensure_user
    install_dir 0755 "$PREFIX"
    install_dir 0755 "$PREFIX/bin"
    install_file 0755 "$REPO/target/release/stockops" "$PREFIX/bin/stockops"
    install_file 0644 "$REPO/spin.toml" "$PREFIX/spin.toml"
    install_file 0644 "$REPO/README.md" "$PREFIX/README.md"
    # Components and the files mounted into them, at the same paths relative to spin.toml.
    local _kind path
    while read -r _kind path; do
        install_dir 0755 "$PREFIX/$(dirname "$path")"
        install_file 0644 "$REPO/$path" "$PREFIX/$path"
    done < <(manifest_files | sort -u)
    # The runtime config may hold a libSQL token: readable by the service's group only.
    install_dir 0755 "$PREFIX/runtime-config"
    install_file 0640 "$RUNTIME_CONFIG" "$INSTALLED_RC"
    # The operations scripts, so status, backups and restores run from the prefix.
    install_dir 0755 "$PREFIX/scripts"
    install_dir 0755 "$PREFIX/scripts/lib"
    for f in "${OPS_SCRIPTS[@]}"; do
        install_file 0755 "$REPO/scripts/$f" "$PREFIX/scripts/$f"
    done
    install_file 0644 "$REPO/scripts/lib/ops.sh" "$PREFIX/scripts/lib/ops.sh"
    # Writable by the service: its data directories and the backups directory.
    local d
    while IFS= read -r d; do install_dir 0750 "$d" "$SERVICE_USER"; done < <(data_dirs)
    install_dir 0750 "$BACKUP_DIR" "$SERVICE_USER"
    ensure_secrets
    # What is deployed, for the next deploy (which runtime config holds the data to back up) and for people.
    local state
    state=$(mktemp)
    {
        echo "DEPLOYED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo -dirty)"
        echo "RUNTIME_CONFIG=$INSTALLED_RC"
        echo "LISTEN=$LISTEN"
        echo "BACKUP=${NEW_BACKUP:-none}"
    } > "$state"
    install_file 0644 "$state" "$STATE_FILE"
    rm -f "$state"
}

# The unit from the template (the one source of truth for its contents): the template's own header
# comment replaced by a note saying where the unit comes from, the @…@ placeholders filled.
render_unit() {
    local rw
    rw=$(data_dirs | tr '\n' ' ' | sed 's/ $//')
    echo "# Written by scripts/deploy.sh from deploy/systemd/stockops.service on $(date -u +%Y-%m-%d): change that"
    echo "# template and redeploy with --create-service, or add a drop-in (systemctl edit $UNIT_NAME)."
    sed -e '1,/^\[Unit\]/{/^\[Unit\]/!d}' \
        -e "s|@PREFIX@|$PREFIX|g" -e "s|@USER@|$SERVICE_USER|g" -e "s|@GROUP@|$SERVICE_GROUP|g" \
        -e "s|@RUNTIME_CONFIG@|$INSTALLED_RC|g" -e "s|@LISTEN@|$LISTEN|g" -e "s|@READ_WRITE_PATHS@|$rw|g" \
        "$UNIT_TEMPLATE"
}

# 0: restarted under systemd; 1: no service to restart (the caller then skips the health checks).
restart_service() {
    step "service"
    local unit_path=/etc/systemd/system/$UNIT_NAME
    if [ "$CREATE_SERVICE" = 1 ]; then
        local unit
        unit=$(mktemp)
        render_unit > "$unit"
        # Every placeholder must be filled: a typo in the template would otherwise reach systemd.
        if grep -n '@[A-Z_]*@' "$unit" >&2; then die "unfilled placeholders in the unit (above)"; fi
        if [ "$DRY_RUN" = 1 ]; then
            log "would write $unit_path:"
            sed 's/^/    /' "$unit" >&2
        fi
        install_file 0644 "$unit" "$unit_path" root root
        rm -f "$unit"
        if have_systemd; then
            as_root systemctl daemon-reload
            as_root systemctl enable "$UNIT_NAME"
        fi
    fi
    if have_systemd && { [ -f "$unit_path" ] || systemctl cat "$UNIT_NAME" >/dev/null 2>&1; }; then
        [ "$CREATE_SERVICE" = 1 ] || log "$UNIT_NAME exists and is left as it is (--create-service rewrites it)"
        as_root systemctl restart "$UNIT_NAME"
        return 0
    fi
    if ! have_systemd; then
        log "systemd is not running here (a container?): nothing to restart."
    else
        log "no $UNIT_NAME: pass --create-service to install one."
    fi
    local as_user=""
    [ "$(id -un)" = "$SERVICE_USER" ] || as_user="runuser -u $SERVICE_USER -- "
    cat >&2 <<EOF
Start the host yourself, as $SERVICE_USER, from $PREFIX (the secrets come from $PREFIX/.env):
    cd $PREFIX && ${as_user}bin/stockops up --manifest $PREFIX/spin.toml \\
        --runtime-config $INSTALLED_RC --listen $LISTEN
then check it:
    $PREFIX/scripts/health_check.sh --url $HEALTH_URL --runtime-config $INSTALLED_RC --strict
EOF
    return 1
}

# Polls /health until it passes (ok, or also degraded with --allow-degraded) or the timeout runs out.
wait_healthy() {
    step "health checks ($HEALTH_URL, up to ${HEALTH_TIMEOUT}s)"
    local args=(--url "$HEALTH_URL" --runtime-config "$RUNTIME_CONFIG")
    [ "$STRICT_HEALTH" = 1 ] && args+=(--strict)
    printf '+ %s (retried every 2 s)\n' "$(printf '%q ' "$REPO/scripts/health_check.sh" "${args[@]}")" >&2
    [ "$DRY_RUN" = 1 ] && return 0
    local deadline=$((SECONDS + HEALTH_TIMEOUT)) out rc
    while :; do
        rc=0
        out=$("$REPO/scripts/health_check.sh" "${args[@]}" 2>&1) || rc=$?
        if [ "$rc" = 0 ]; then
            printf '%s\n' "$out" >&2
            log "healthy"
            return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || break
        sleep 2
    done
    printf '%s\n' "$out" >&2
    if have_systemd; then
        "${SUDO[@]}" systemctl --no-pager status "$UNIT_NAME" >&2 || true
        "${SUDO[@]}" journalctl --no-pager -u "$UNIT_NAME" -n 40 >&2 || true
    fi
    local hint=""
    [ "$STRICT_HEALTH" = 1 ] && hint=" (a first deploy without data is degraded: --allow-degraded)"
    die "not healthy after ${HEALTH_TIMEOUT}s$hint${NEW_BACKUP:+; the pre-deploy backup is $NEW_BACKUP}"
}

main() {
    [ "$DRY_RUN" = 1 ] && log "dry run: nothing will be changed"
    check_prerequisites
    run_tests
    build
    SERVICE_GROUP=$(id -gn "$SERVICE_USER" 2>/dev/null || echo "$SERVICE_USER")
    backup_current
    install_app
    if restart_service; then
        wait_healthy
        log "deployed to $PREFIX; serving on $HEALTH_URL"
    else
        log "installed to $PREFIX (not started: see above)"
    fi
}

main
