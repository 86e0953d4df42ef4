#!/usr/bin/env bash
# CI stage: the login, consent and denial pages in headless Chromium (tools/browser-check.sh,
# which drives tools/browser-check.mjs with playwright-core, pinned in that script).
#
#  1. installs Debian's chromium when it is missing (CI runs as root on a fresh machine; the
#     check launches it with --no-sandbox, which running as root requires);
#  2. points the check at the debug binary that `cargo test` has already built, instead of a
#     release build (minutes of compiling on CI's two cores for a handful of page loads);
#  3. runs the check on a free port; any failed check fails the stage.
#
# Screenshots and the server's log stay in target/browser-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

log() { printf '[browser] %s\n' "$*" >&2; }

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  log "installing chromium from the distribution's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

log "building oauth-mcp (debug)"
cargo build --bin oauth-mcp

# A port nothing listens on: ask the kernel for one, then hand it to the check.
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PORT
export OAUTH_MCP_BIN="$REPO/target/debug/oauth-mcp"
export SCREENSHOT_DIR="$REPO/target/browser-check"
rm -rf "$SCREENSHOT_DIR"
log "running tools/browser-check.sh on port $PORT"
timeout 600 "$REPO/tools/browser-check.sh"
