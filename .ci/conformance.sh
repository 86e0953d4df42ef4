#!/usr/bin/env bash
# CI stage: the official MCP conformance suite against examples/conformance_server/,
# behind the real bearer protection.
#
#  1. builds and starts the example on a free loopback port (it prints its URL);
#  2. obtains an access token through the real OAuth flow: authorization code + PKCE (S256),
#     the login and consent form as demo_user, the code exchanged by demo_client
#     (client_secret_basic) — the README's curl walk-through, with every step checked;
#  3. runs ../shared/tools/conformance.sh with MCP_BEARER three times and requires
#       0.1.16 active suite   >= 40 passed, 0 failed
#       0.1.16 --suite all    >= 47 passed, 0 failed
#       0.2.0-alpha.12 active >= 73 passed, 0 failed
#  4. stops the server (trap), whatever happened.
#
# Exit 0 only if all three runs meet their numbers. Results (checks.json per scenario, the
# suite's log) and the server's log stay in target/conformance/.
#
# Environment:
#   CONFORMANCE_TOOL   path of conformance.sh (default: <repo>/../shared/tools/conformance.sh)
#   CONFORMANCE_CACHE  passed through (where Node 22 and the suite are installed)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
TOOL="${CONFORMANCE_TOOL:-$(dirname "$REPO")/shared/tools/conformance.sh}"
OUT="$REPO/target/conformance"
# A healthy run of one suite takes seconds; a request the server never answers costs 60 s.
SUITE_TIMEOUT_S="${SUITE_TIMEOUT_S:-300}"

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[ -f "$TOOL" ] || die "conformance tool not found at $TOOL"
for cmd in curl openssl base64; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is required"
done

rm -rf "$OUT" && mkdir -p "$OUT"
# shellcheck source=.ci/lib.sh
source "$REPO/.ci/lib.sh"

# --- 1. build and start the server -------------------------------------------------------
log "building examples/conformance_server/"
cargo build --example conformance_server
BIN="$REPO/target/debug/examples/conformance_server"

"$BIN" --port 0 >"$WORK/server.out" 2>"$OUT/server.log" &
SERVER_PID=$!
MCP_URL="$(await_server "$WORK/server.out" 's#^conformance server: \(http://[^ ]*/mcp\) .*#\1#p' "$OUT/server.log")"
BASE="${MCP_URL%/mcp}"
log "server up: $MCP_URL (pid $SERVER_PID)"

# --- 2. an access token through the real authorization-code + PKCE flow -------------------
CLIENT_ID=demo_client CLIENT_SECRET=demo_secret
USERNAME=demo_user PASSWORD=demo_password
REDIRECT="http://127.0.0.1:8765/callback"   # registered for demo_client, nothing listens there
SCOPE="mcp:read mcp:write"
STATE="$(openssl rand -hex 16)"
VERIFIER="$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
CHALLENGE="$(printf %s "$VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n')"
JAR="$WORK/cookies.txt"

# 2a. The authorization request: the login and consent page, with its CSRF cookie.
status="$(curl -sS -c "$JAR" -o "$WORK/page.html" -w '%{http_code}' -G "$BASE/authorize" \
  --data-urlencode response_type=code --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "scope=$SCOPE" \
  --data-urlencode "state=$STATE" --data-urlencode "code_challenge=$CHALLENGE" \
  --data-urlencode code_challenge_method=S256)"
[ "$status" = 200 ] || die "GET /authorize answered $status"
CSRF="$(grep -o 'name="csrf" value="[^"]*"' "$WORK/page.html" | head -n1 | cut -d'"' -f4)"
[ -n "$CSRF" ] || die "no CSRF token in the login page"

# 2b. Sign in and approve: a 303 to the redirect URI with code, state and iss.
read -r status LOCATION < <(curl -sS -b "$JAR" -o /dev/null -w '%{http_code} %{redirect_url}\n' \
  "$BASE/authorize/decision" \
  --data-urlencode "csrf=$CSRF" --data-urlencode response_type=code \
  --data-urlencode "client_id=$CLIENT_ID" --data-urlencode "redirect_uri=$REDIRECT" \
  --data-urlencode "scope=$SCOPE" --data-urlencode "state=$STATE" \
  --data-urlencode "code_challenge=$CHALLENGE" --data-urlencode code_challenge_method=S256 \
  --data-urlencode "username=$USERNAME" --data-urlencode "password=$PASSWORD" \
  --data-urlencode action=approve)
[ "$status" = 303 ] || die "POST /authorize/decision answered $status"
case "$LOCATION" in "$REDIRECT?"*) ;; *) die "redirected to an unexpected place: $LOCATION" ;; esac
query_param() { printf '%s' "$LOCATION" | sed -n "s/.*[?&]$1=\([^&]*\).*/\1/p"; }
[ -z "$(query_param error)" ] || die "authorization error: $LOCATION"
[ "$(query_param state)" = "$STATE" ] || die "state not echoed: $LOCATION"
[ -n "$(query_param iss)" ] || die "no iss parameter (RFC 9207): $LOCATION"
CODE="$(query_param code)"
[ -n "$CODE" ] || die "no code in $LOCATION"

# 2c. Exchange the code (client_secret_basic) with the PKCE verifier.
status="$(curl -sS -u "$CLIENT_ID:$CLIENT_SECRET" -o "$WORK/tokens.json" -w '%{http_code}' \
  "$BASE/token" -d grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT" --data-urlencode "code_verifier=$VERIFIER")"
[ "$status" = 200 ] || die "POST /token answered $status: $(cat "$WORK/tokens.json")"
ACCESS="$(sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' "$WORK/tokens.json")"
[ -n "$ACCESS" ] || die "no access_token in the token response"

# 2d. The token opens /mcp, and no token gets the 401 challenge.
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"ci","version":"0"}}}'
mcp_post() {
  curl -sS -o /dev/null -w '%{http_code}' "$MCP_URL" "$@" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -d "$init"
}
status="$(mcp_post)"
[ "$status" = 401 ] || die "unauthenticated initialize answered $status, expected 401"
status="$(mcp_post -H "authorization: Bearer $ACCESS")"
[ "$status" = 200 ] || die "authenticated initialize answered $status, expected 200"
log "access token obtained through the authorization-code + PKCE flow"

# --- 3. the suite, three times -------------------------------------------------------------
FAILED=()
SUMMARY=()
# run_suite LABEL MIN_PASSED [VAR=value ...] -- [conformance.sh args ...]
run_suite() {
  local label="$1" min="$2"; shift 2
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  local logf="$OUT/$label.log" rc=0
  log "suite $label: ${envs[*]:-} conformance.sh $MCP_URL $*"
  env "${envs[@]}" MCP_BEARER="$ACCESS" CONFORMANCE_OUT="$OUT/$label" \
    CONFORMANCE_TIMEOUT_S="$SUITE_TIMEOUT_S" \
    bash "$TOOL" "$MCP_URL" "$@" 2>&1 | tee "$logf" || rc=$?
  local line passed failed
  line="$(grep -E '^conformance: ' "$logf" | tail -n1 || true)"
  SUMMARY+=("$label: ${line:-no result (exit $rc)}")
  if [ "$rc" -ne 0 ] || ! [[ "$line" =~ ^conformance:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    FAILED+=("$label: the suite did not run (exit $rc): ${line:-no result line}")
    return
  fi
  passed="${BASH_REMATCH[1]}" failed="${BASH_REMATCH[2]}"
  if [ "$failed" -ne 0 ]; then
    FAILED+=("$label: $failed check(s) failed")
  elif [ "$passed" -lt "$min" ]; then
    FAILED+=("$label: only $passed passed, expected at least $min")
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || FAILED+=("$label: the server died")
}

run_suite active-0.1.16 40 CONFORMANCE_VERSION=0.1.16 --
run_suite all-0.1.16 47 CONFORMANCE_VERSION=0.1.16 -- --suite all
run_suite active-0.2.0-alpha.12 73 CONFORMANCE_VERSION=0.2.0-alpha.12 --

log "summary:"
for s in "${SUMMARY[@]}"; do log "  $s"; done
if [ "${#FAILED[@]}" -gt 0 ]; then
  for f in "${FAILED[@]}"; do log "FAIL: $f"; done
  log "details: $OUT (checks.json per scenario, server.log)"
  exit 1
fi
log "all conformance runs passed"
