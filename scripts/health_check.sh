#!/usr/bin/env bash
# The seed guide's health check: the app's /health over HTTP (which checks the database, schema and
# key-value store inside the app), plus Redis directly when the runtime config uses it.
# Exit status: 0 ok, 1 degraded (with --strict) or failing, 2 unreachable.
#   scripts/health_check.sh [--url http://127.0.0.1:3000] [--runtime-config FILE] [--strict]
set -uo pipefail
URL=http://127.0.0.1:3000
RC=""
STRICT=0
while [ $# -gt 0 ]; do
    case "$1" in
        --url) URL=$2; shift 2 ;;
        --runtime-config) RC=$2; shift 2 ;;
        --strict) STRICT=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

body=$(curl -sS --max-time 10 -w '\n%{http_code}' "$URL/health") || { echo "FAIL: $URL/health unreachable"; exit 2; }
code=$(printf '%s' "$body" | tail -n 1)
json=$(printf '%s' "$body" | sed '$d')
status=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || echo unknown)
printf '%s' "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
for name, c in sorted(r["checks"].items()):
    status, ms, detail = c["status"], c["latency_ms"], c["detail"]
    print(f"  {name:16} {status:9} {ms:8.3f} ms  {detail}")
' 2>/dev/null
echo "http $code, status $status"
rc=0
[ "$status" = failing ] || [ "$code" != 200 ] && rc=1
[ "$STRICT" = 1 ] && [ "$status" != ok ] && rc=1

if [ -n "$RC" ]; then
    redis_url=$(sed -n 's/^url *= *"\(redis[^"]*\)".*/\1/p' "$RC" | head -n 1)
    if [ -n "$redis_url" ]; then
        if command -v redis-cli >/dev/null && [ "$(redis-cli -u "$redis_url" ping 2>/dev/null)" = PONG ]; then
            echo "redis $redis_url: PONG"
        else
            echo "FAIL: redis $redis_url does not answer PING"
            rc=1
        fi
    fi
fi
exit $rc
