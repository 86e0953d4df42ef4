#!/usr/bin/env bash
# CI stage: the official MCP SDK clients against the real server, each through the whole
# flow a user goes through: discovery, dynamic registration, authorization code + PKCE via
# the login and consent form, tools/list and tools/call, and a refresh.
#
#  1. installs the pinned clients: Python `mcp` (.ci/interop/requirements.txt) into a
#     virtual environment under target/interop/, TypeScript `@modelcontextprotocol/sdk`
#     (.ci/interop/package.json + package-lock.json) with `npm ci`;
#  2. starts target/debug/oauth-mcp (built by `cargo test` before this stage) on a free
#     loopback port with a temporary data directory, the demo user seeded, and access tokens
#     living 2 s, so that each client's second tool call needs a refresh;
#  3. runs python_client.py twice (mode "legacy": a session at a handshake-era version;
#     mode "auto": the newest version both sides speak) and ts_client.mjs; any exiting
#     non-zero fails the stage;
#  4. stops the server (trap), whatever happened.
#
# Not covered here (written down in docs/troubleshooting.md): the SDKs' client ID metadata
# document support, which both accept only for https document URLs, which CI cannot serve
# with a certificate the server trusts.
#
# Output of each run and the server's log stay in target/interop/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
OUT="$REPO/target/interop"
CLIENT_TIMEOUT_S="${CLIENT_TIMEOUT_S:-120}"

log() { printf '[interop] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for cmd in python3 node npm; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is required"
done
mkdir -p "$OUT"
rm -f "$OUT"/*.log
# shellcheck source=.ci/lib.sh
source "$REPO/.ci/lib.sh"

# --- 1. the clients -----------------------------------------------------------------------
start_s=$SECONDS
if [ ! -x "$OUT/venv/bin/python" ]; then
  log "creating the Python environment"
  python3 -m venv "$OUT/venv"
fi
"$OUT/venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/interop/requirements.txt
log "installing the TypeScript SDK (npm ci)"
(cd .ci/interop && npm ci --no-audit --no-fund --loglevel=error)

cargo build --bin oauth-mcp
BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/oauth-mcp"

# --- 2. the server ------------------------------------------------------------------------
"$BIN" --bind 127.0.0.1:0 --data-dir "$WORK/data" --access-token-ttl 2 --log-json \
  >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
PORT="$(await_server "$OUT/server.log" 's/.*"local_addr":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$OUT/server.log")"
URL="http://127.0.0.1:$PORT/mcp"
log "server up: $URL (pid $SERVER_PID)"

# --- 3. the clients, one after the other ---------------------------------------------------
FAILED=()
run() {
  local name="$1"; shift
  local rc=0
  log "$name"
  timeout "$CLIENT_TIMEOUT_S" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  sed 's/^/    /' "$OUT/$name.log" >&2
  [ "$rc" -eq 0 ] || FAILED+=("$name exited $rc")
  kill -0 "$SERVER_PID" 2>/dev/null || FAILED+=("the server died during $name")
}
run python-legacy "$OUT/venv/bin/python" .ci/interop/python_client.py "$URL" demo_user demo_password legacy
run python-auto "$OUT/venv/bin/python" .ci/interop/python_client.py "$URL" demo_user demo_password auto
run typescript node .ci/interop/ts_client.mjs "$URL" demo_user demo_password

if [ "${#FAILED[@]}" -gt 0 ]; then
  for f in "${FAILED[@]}"; do log "FAIL: $f"; done
  tail -n 40 "$OUT/server.log" >&2 || true
  exit 1
fi
log "the Python and TypeScript SDK clients completed the flow ($((SECONDS - start_s)) s)"
