#!/usr/bin/env bash
# The whole picture of a stockops deployment, one section each: the systemd service, the host process,
# /health, the newest backup, the champion and challenger models, firing alerts, and the Redis and libSQL
# servers the runtime config names. A section that cannot be read says so and the others still run.
#
#   scripts/status.sh [--url http://127.0.0.1:3000] [--runtime-config FILE] [--token TOKEN]
#                     [--service stockops.service] [--backup-max-age-hours 36] [--strict] [--timeout SECS]
#
# Exit status: 0 nothing failing (warnings allowed), 1 something failing (or any warning with --strict),
# 2 the host does not answer at all.
set -euo pipefail
PROG=status
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/ops.sh
. "$ROOT/scripts/lib/ops.sh"

URL=http://127.0.0.1:3000
RUNTIME_CONFIG=""
TOKEN_ARG=""
SERVICE=stockops.service
BACKUP_MAX_AGE_HOURS=36
STRICT=0
TIMEOUT=10

usage() {
    cat <<'EOF'
Usage: scripts/status.sh [options]

  --url URL                    the host (default: http://127.0.0.1:3000)
  --runtime-config FILE        to check the Redis / libSQL servers it names (default: $STOCKOPS_RUNTIME_CONFIG,
                               else the running service's, else this install's runtime-config/ file,
                               else runtime-config/local.toml)
  --token TOKEN                API token for reads when require_auth_for_reads is on (default:
                               $SPIN_VARIABLE_API_TOKEN, else .env beside spin.toml)
  --service NAME               systemd unit (default: stockops.service)
  --backup-max-age-hours N     the newest verified backup must be younger (default: 36, as /health)
  --strict                     warnings (degraded health, stale backup, no champion…) fail too
  --timeout SECS               per request (default: 10)
  -h, --help                   this help

Exit status: 0 nothing failing, 1 something failing (or warned, with --strict), 2 host unreachable.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --url) URL=${2:?--url needs a URL}; shift 2 ;;
        --runtime-config) RUNTIME_CONFIG=${2:?--runtime-config needs a file}; shift 2 ;;
        --token) TOKEN_ARG=${2:?--token needs a value}; shift 2 ;;
        --service) SERVICE=${2:?--service needs a unit name}; shift 2 ;;
        --backup-max-age-hours) BACKUP_MAX_AGE_HOURS=${2:?}; shift 2 ;;
        --strict) STRICT=1; shift ;;
        --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
URL=${URL%/}
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"
load_token "$TOKEN_ARG" "$ROOT"

FAILS=0
WARNS=0
UNREACHABLE=0

section() { printf '\n== %s\n' "$*"; }
ok() { printf '  [ok]   %s\n' "$*"; }
info() { printf '  [--]   %s\n' "$*"; }
warn_line() { printf '  [WARN] %s\n' "$*"; WARNS=$((WARNS + 1)); }
fail_line() { printf '  [FAIL] %s\n' "$*"; FAILS=$((FAILS + 1)); }

# Prints "LEVEL<TAB>message" lines (from the Python reports below) as the lines above, counting them.
emit() {
    local level msg
    while IFS=$'\t' read -r level msg; do
        case "$level" in
            ok) ok "$msg" ;;
            warn) warn_line "$msg" ;;
            fail) fail_line "$msg" ;;
            *) info "$msg" ;;
        esac
    done
}

# GET URL+PATH with the token: sets API_CODE (000 when nothing answered) and API_BODY.
api_get() {
    local out
    if out=$(curl_auth -sS --max-time "$TIMEOUT" -w '\n%{http_code}' "$URL$1" 2>&1); then
        API_CODE=$(printf '%s' "$out" | tail -n 1)
        API_BODY=$(printf '%s' "$out" | sed '$d')
    else
        API_CODE=000
        API_BODY=$out
    fi
}

# Reports a non-2xx answer of an endpoint, in the API's one error shape when it has it.
api_problem() {
    local what=$1
    case "$API_CODE" in
        000) fail_line "$what: no answer (${API_BODY##*curl: })" ;;
        401|403) fail_line "$what: HTTP $API_CODE (reads need the token: require_auth_for_reads is on; pass --token or set SPIN_VARIABLE_API_TOKEN)" ;;
        501) info "$what: not implemented by this build (HTTP 501)" ;;
        *) fail_line "$what: HTTP $API_CODE $(printf '%s' "$API_BODY" | python3 -c '
import json, sys
try:
    e = json.load(sys.stdin)["error"]; print(e.get("code"), e.get("message"), sep=": ")
except Exception:
    print("(no error body)")' 2>/dev/null)" ;;
    esac
}

# The JSON reports: `python3 -c "$REPORT" KIND ARGS…` reads a body on stdin and prints LEVEL<TAB>message.
REPORT=$(cat <<'PY'
import json, sys
from datetime import datetime, timezone

kind, args = sys.argv[1], sys.argv[2:]
try:
    body = json.load(sys.stdin)
except ValueError:
    print("fail\tanswer is not JSON"); sys.exit()
now = datetime.now(timezone.utc)

def age(ts):
    """Age of an RFC 3339 time, as text and in hours."""
    try:
        t = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
    except ValueError:
        return "age unknown", None
    h = (now - t).total_seconds() / 3600
    text = f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h" if h < 48 else f"{h / 24:.1f} days"
    return text + " ago", h

def size(n):
    if n is None:
        return "size ?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024

if kind == "health":
    code = args[0]
    if not isinstance(body, dict) or "status" not in body:
        print(f"fail\tHTTP {code}, not a health report"); sys.exit()
    for name, c in sorted((body.get("checks") or {}).items()):
        st = c.get("status", "?")
        lat = c.get("latency_ms")
        lat = f"{lat:.1f} ms" if isinstance(lat, (int, float)) else "? ms"
        print(f"info\t  {name:15} {st:9} {lat:>9}  {c.get('detail', '')}")
    st = body["status"]
    level = "ok" if st == "ok" and code == "200" else "warn" if st == "degraded" and code == "200" else "fail"
    print(f"{level}\tHTTP {code}, status {st}")

elif kind == "backups":
    limit = float(args[0])
    backups = body.get("backups", []) if isinstance(body, dict) else body
    if not backups:
        print("warn\tno backups yet (POST /api/backups or scripts/backup.sh takes one)"); sys.exit()
    backups = sorted(backups, key=lambda b: b.get("created_at", ""), reverse=True)
    b = backups[0]
    text, _ = age(b.get("created_at"))
    line = f"newest: {b.get('id')} {b.get('status')} ({b.get('trigger') or '?'}, {size(b.get('size_bytes'))}, {text})"
    if b.get("status") == "failed":
        print(f"warn\t{line}: {b.get('error') or 'failed'}")
    elif b.get("status") == "writing":
        print(f"info\t{line}: still being written")
    else:
        print(f"ok\t{line}")
    verified = [x for x in backups if x.get("status") == "verified"]
    if not verified:
        print("warn\tno verified backup"); sys.exit()
    text, hours = age(verified[0].get("created_at"))
    line = f"newest verified: {verified[0].get('id')}, {text} (limit {limit:g} h)"
    print(("warn" if hours is None or hours > limit else "ok") + "\t" + line)
    failed = sum(1 for x in backups if x.get("status") == "failed")
    print(f"info\t{len(backups)} backups listed, {failed} failed")

elif kind == "models":
    models = body.get("models", [])
    if not models:
        print("warn\tno models in the registry"); sys.exit()
    champions = 0
    for m in models:
        aliases = m.get("aliases") or {}
        champions += "champion" in aliases
        # "-" for a missing field: read(1) collapses consecutive tabs, so an empty field would shift the rest.
        field = lambda v: "-" if v is None or v == "" else str(v)
        print("\t".join(["model", field(m.get("name")), field(aliases.get("champion")),
                         field(aliases.get("challenger")), field(m.get("latest_ready")),
                         field(m.get("ready_versions", 0))]))
    if not champions:
        print("warn\tno model has a champion: predictions without ?model= have nothing to serve")

elif kind == "model":
    name, champion, challenger, latest, ready = ["" if a == "-" else a for a in args]
    versions = {str(v.get("version")): v for v in body.get("versions", [])}
    def describe(alias, v):
        if not v:
            return None
        ver = versions.get(v)
        if ver is None:
            return f"{alias} v{v} (not in the version list)"
        text, _ = age(ver.get("finished_at") or ver.get("created_at"))
        test = (ver.get("metrics") or {}).get("test") or {}
        shown = ", ".join(f"{k} {test[k]:.4f}" for k in ("ic", "rank_ic", "icir", "mse")
                          if isinstance(test.get(k), (int, float)))
        return f"{alias} v{v} {ver.get('status')}, trained {text}" + (f"; test {shown}" if shown else "")
    parts = [p for p in (describe("champion", champion), describe("challenger", challenger)) if p]
    head = f"{name}: {ready} ready version(s), newest v{latest or '-'}"
    if not champion:
        print(f"info\t{head}; no champion")
    elif versions.get(champion, {}).get("status") not in (None, "ready"):
        print(f"fail\t{head}; champion v{champion} is {versions[champion].get('status')}")
    else:
        print(f"ok\t{head}")
    for p in parts:
        print(f"info\t  {p}")

elif kind == "alerts":
    alerts = body.get("alerts", []) if isinstance(body, dict) else body
    alerts = [a for a in alerts if a.get("state", "firing") == "firing"]
    if not alerts:
        print("ok\tno firing alerts"); sys.exit()
    for a in sorted(alerts, key=lambda a: (a.get("severity") != "critical", a.get("started_at", ""))):
        text, _ = age(a.get("started_at"))
        acked = f", acked by {a.get('acked_by') or '?'}" if a.get("acked_at") else ""
        level = "fail" if a.get("severity") == "critical" and not a.get("acked_at") else "warn"
        print(f"{level}\t{a.get('severity', '?')} {a.get('rule_id') or a.get('fingerprint')}: "
              f"{a.get('summary', '')} (since {text}{acked})")
PY
)

# The systemd unit's state, when systemd runs here.
service_status() {
    section "service ($SERVICE)"
    if ! have_systemd; then
        info "systemd is not running here (container or manual start): see the process and health below"
        return
    fi
    local props
    props=$(systemctl show "$SERVICE" -p LoadState -p ActiveState -p SubState -p MainPID -p NRestarts \
        -p ActiveEnterTimestamp -p UnitFileState 2>/dev/null || true)
    prop() { printf '%s\n' "$props" | sed -n "s/^$1=//p"; }
    if [ "$(prop LoadState)" != loaded ]; then
        info "not installed (scripts/deploy.sh --create-service installs it)"
        return
    fi
    local line
    line="$(prop ActiveState)/$(prop SubState), pid $(prop MainPID), since $(prop ActiveEnterTimestamp), restarts $(prop NRestarts), $(prop UnitFileState)"
    case "$(prop ActiveState)" in
        active) ok "$line" ;;
        activating|reloading) warn_line "$line" ;;
        *) fail_line "$line (journalctl -u ${SERVICE%.service} -n 50)" ;;
    esac
}

# `stockops up` processes on this machine (there may be none: the host may run elsewhere).
process_status() {
    section "host process"
    local found
    found=$(ps -eo pid=,etimes=,rss=,args= 2>/dev/null | python3 -c '
import os, sys
for line in sys.stdin:
    pid, secs, rss, args = line.split(None, 3)
    argv = args.split()
    if os.path.basename(argv[0]) == "stockops" and "up" in argv[1:3]:
        s = int(secs)
        up = f"{s // 86400}d {s % 86400 // 3600}h" if s >= 86400 else f"{s // 3600}h {s % 3600 // 60}m"
        listen = argv[argv.index("--listen") + 1] if "--listen" in argv[:-1] else "default listen"
        print(f"pid {pid}, up {up}, {int(rss) / 1024:.0f} MiB resident, {listen}")
' || true)
    if [ -n "$found" ]; then
        while IFS= read -r line; do info "$line"; done <<< "$found"
    else
        info "no 'stockops up' process on this machine"
    fi
}

# /health, each check on its own line: status ok → ok, degraded → warning, failing (503) → failing.
health_status() {
    section "health ($URL/health)"
    api_get /health
    if [ "$API_CODE" = 000 ]; then
        fail_line "unreachable: ${API_BODY##*curl: }"
        UNREACHABLE=1
        return
    fi
    emit < <(printf '%s' "$API_BODY" | python3 -c "$REPORT" health "$API_CODE")
}

backups_status() {
    section "backups"
    api_get /api/backups
    if [ "$API_CODE" = 200 ]; then
        emit < <(printf '%s' "$API_BODY" | python3 -c "$REPORT" backups "$BACKUP_MAX_AGE_HOURS")
    else
        api_problem "GET /api/backups"
    fi
}

models_status() {
    section "models"
    api_get /api/models
    if [ "$API_CODE" != 200 ]; then api_problem "GET /api/models"; return; fi
    local listing level name champion challenger latest ready
    listing=$(printf '%s' "$API_BODY" | python3 -c "$REPORT" models)
    while IFS=$'\t' read -r level name champion challenger latest ready; do
        if [ "$level" != model ]; then emit <<< "$level"$'\t'"$name"; continue; fi
        local path
        path=/api/models/$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$name")
        api_get "$path"
        if [ "$API_CODE" = 200 ]; then
            emit < <(printf '%s' "$API_BODY" | python3 -c "$REPORT" model "$name" "$champion" "$challenger" "$latest" "$ready")
        else
            api_problem "GET $path"
        fi
    done <<< "$listing"
}

alerts_status() {
    section "alerts (firing)"
    api_get '/api/alerts?state=firing'
    if [ "$API_CODE" = 200 ]; then
        emit < <(printf '%s' "$API_BODY" | python3 -c "$REPORT" alerts)
    else
        api_problem "GET /api/alerts?state=firing"
    fi
}

# The runtime config of the running service when none is given: from the unit's or process's command line.
guess_runtime_config() {
    [ -n "$RUNTIME_CONFIG" ] && return
    [ -n "${STOCKOPS_RUNTIME_CONFIG:-}" ] && { RUNTIME_CONFIG=$STOCKOPS_RUNTIME_CONFIG; return; }
    local cmdline=""
    have_systemd && cmdline=$(systemctl show "$SERVICE" -p ExecStart --value 2>/dev/null || true)
    if [ -z "$cmdline" ]; then
        # Only when there is exactly one `stockops up` here: with several, which one serves --url is unknown.
        local procs
        procs=$(pgrep -af '(^|/)stockops up( |$)' 2>/dev/null || true)
        if [ -n "$procs" ] && [ "$(printf '%s\n' "$procs" | wc -l)" = 1 ]; then cmdline=$procs; fi
    fi
    local found
    found=$(printf '%s\n' "$cmdline" | grep -oE -- '--runtime-config[= ][^ ;]+' | head -n 1 | sed -E 's/^--runtime-config[= ]//' || true)
    # Only an absolute path means the same file from here.
    if [ "${found:0:1}" = / ] && [ -r "$found" ]; then RUNTIME_CONFIG=$found; return; fi
    # Last, this root's own: the one file in an install prefix's runtime-config/, else local.toml.
    found=$(default_runtime_config "$ROOT")
    [ -f "$found" ] && RUNTIME_CONFIG=$found
}

# Redis (PING) and libSQL (its /health) as named by the runtime config; embedded files just listed.
backends_status() {
    section "backends"
    guess_runtime_config
    if [ -z "$RUNTIME_CONFIG" ]; then
        info "no runtime config given or found (--runtime-config FILE): skipped"
        return
    fi
    if [ ! -r "$RUNTIME_CONFIG" ]; then
        fail_line "cannot read $RUNTIME_CONFIG"
        return
    fi
    info "runtime config $RUNTIME_CONFIG"
    local backends
    if ! backends=$(runtime_config_backends "$RUNTIME_CONFIG" 2>&1); then
        fail_line "$RUNTIME_CONFIG is not a valid runtime config: ${backends##*$'\n'}"
        return
    fi
    local kind label type where
    while read -r kind label type where; do
        case "$type" in
            spin) if [ -e "$where" ]; then
                      info "$kind.$label: embedded file $where ($(du -h "$where" 2>/dev/null | cut -f1))"
                  else
                      info "$kind.$label: embedded file $where (not created yet)"
                  fi ;;
            libsql)
                local code
                code=$(curl -s -o /dev/null --max-time "$TIMEOUT" -w '%{http_code}' "$where/health" || true)
                case "$code" in
                    200) ok "$kind.$label: libSQL server $where answers /health" ;;
                    000|"") fail_line "$kind.$label: libSQL server $where does not answer" ;;
                    *) warn_line "$kind.$label: libSQL server $where answers /health with HTTP $code" ;;
                esac ;;
            redis) : ;;  # pinged below, with the credentials the listing leaves out
            *) info "$kind.$label: $type $where" ;;
        esac
    done <<< "$backends"
    local url reply shown
    while IFS= read -r url; do
        [ -n "$url" ] || continue
        shown=$(printf '%s' "$url" | sed -E 's#//[^@/]*@#//***@#')
        if reply=$(redis_ping "$url"); then
            ok "redis $shown: $reply"
        else
            fail_line "redis $shown: ${reply:-no answer}"
        fi
    done < <(runtime_config_redis_urls "$RUNTIME_CONFIG")
}

main() {
    echo "stockops status at $(date -u +%Y-%m-%dT%H:%M:%SZ) — $URL"
    service_status
    process_status
    health_status
    if [ "$UNREACHABLE" = 1 ]; then
        section "backups, models, alerts"
        info "skipped: the host does not answer at $URL"
    else
        backups_status
        models_status
        alerts_status
    fi
    backends_status
    echo
    echo "summary: $FAILS failing, $WARNS warning(s)"
    if [ "$UNREACHABLE" = 1 ]; then exit 2; fi
    if [ "$FAILS" -gt 0 ]; then exit 1; fi
    if [ "$STRICT" = 1 ] && [ "$WARNS" -gt 0 ]; then exit 1; fi
    exit 0
}

main
