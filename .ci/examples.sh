#!/usr/bin/env bash
# CI stage: the client examples against a live server, so they cannot rot.
#
#  1. builds the server and examples/simple_client.rs and examples/oauth_client/ in the dev
#     profile: `cargo test` (run before this by .ci/run) has already built exactly these
#     artefacts, so this step links nothing new; a release build would recompile every
#     dependency (minutes on CI's two cores) for a handful of requests;
#  2. starts target/debug/oauth-mcp on a free loopback port (--bind 127.0.0.1:0; its JSON log
#     names the port) with a temporary data directory and the demo client and user seeded,
#     with --refresh-grace 0 so that oauth_client waits one second, not eleven, before it
#     shows that a rotated-out refresh token is refused, and with the development settings
#     that let it fetch a client ID metadata document from plain http on loopback;
#  3. runs `simple_client --url`, `oauth_client --headless --url --refresh-grace 0` (the
#     demo client) and the same with `--client-metadata-document` (a URL client id served
#     by the example) against it; any exiting non-zero fails the stage;
#  4. stops the server (trap), whatever happened.
#
# Each run's output (the tutorial it prints) and the server's log stay in target/examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
OUT="$REPO/target/examples"
CLIENT_TIMEOUT_S="${CLIENT_TIMEOUT_S:-120}"

log() { printf '[examples] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

rm -rf "$OUT" && mkdir -p "$OUT"
# shellcheck source=.ci/lib.sh
source "$REPO/.ci/lib.sh"

# --- 1. build -------------------------------------------------------------------------------
start_s=$SECONDS
log "building oauth-mcp and the client examples"
cargo build --bin oauth-mcp --example simple_client --example oauth_client
BIN="$REPO/target/debug"

# --- 2. the server ------------------------------------------------------------------------
"$BIN/oauth-mcp" --bind 127.0.0.1:0 --data-dir "$WORK/data" --refresh-grace 0 --log-json \
  --client-metadata-allow-http --client-metadata-allow-private \
  >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
PORT="$(await_server "$OUT/server.log" 's/.*"local_addr":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$OUT/server.log")"
URL="http://127.0.0.1:$PORT"
log "server up: $URL (pid $SERVER_PID)"

# --- 3. the clients -----------------------------------------------------------------------
FAILED=()
RUNS=0
# run_client NAME ARGS...: runs target/debug/examples/NAME, output to the log and to
# $OUT/<run number>-NAME.log.
run_client() {
  local name="$1"; shift
  local rc=0
  RUNS=$((RUNS + 1))
  log "$name $*"
  timeout "$CLIENT_TIMEOUT_S" "$BIN/examples/$name" "$@" 2>&1 | tee "$OUT/$RUNS-$name.log" || rc=$?
  if [ "$rc" -ne 0 ]; then
    FAILED+=("$name exited $rc")
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || FAILED+=("the server died during $name")
}
run_client simple_client --url "$URL"
run_client oauth_client --headless --url "$URL" --refresh-grace 0
run_client oauth_client --headless --url "$URL" --refresh-grace 0 --client-metadata-document

if [ "${#FAILED[@]}" -gt 0 ]; then
  for f in "${FAILED[@]}"; do log "FAIL: $f"; done
  log "server log: $OUT/server.log"
  tail -n 40 "$OUT/server.log" >&2 || true
  exit 1
fi
log "the client examples passed against a live server ($((SECONDS - start_s)) s)"
