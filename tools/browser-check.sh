#!/usr/bin/env bash
# Checks the login and consent page in a real browser: builds and starts oauth-mcp on a
# temporary data directory, then runs tools/browser-check.mjs (playwright-core driving the
# system Chromium) through the keyboard-only login, consent and denial flows at 1280px and
# 360px, and a forged consent posted from another loopback port. Exits non-zero if any
# check fails. CI runs it through .ci/browser.sh; see docs/testing.md.
#
# Needs: chromium (Debian: apt-get install chromium), Node.js >= 20 with npm, curl, cargo.
# Environment (all optional):
#   CHROMIUM        browser binary                      (default /usr/bin/chromium)
#   PORT            port for the server                 (default 8311)
#   OAUTH_MCP_BIN   use this server binary instead of building target/release/oauth-mcp
#   PLAYWRIGHT_DIR  where playwright-core is installed  (default ~/.cache/oauth-mcp-browser-check/...)
#   SCREENSHOT_DIR  where screenshots are written       (default /tmp/oauth-mcp-browser-check)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
playwright_version=1.65.1
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export PLAYWRIGHT_DIR=${PLAYWRIGHT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oauth-mcp-browser-check/playwright-core-$playwright_version}
export SCREENSHOT_DIR=${SCREENSHOT_DIR:-/tmp/oauth-mcp-browser-check}
port=${PORT:-8311}
export OAUTH_MCP_URL="http://127.0.0.1:$port"

die() { echo "browser-check: $*" >&2; exit 2; }

[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM (Debian: apt-get install chromium; or set CHROMIUM)"
command -v node >/dev/null || die "needs Node.js >= 20"
command -v npm >/dev/null || die "needs npm"
command -v curl >/dev/null || die "needs curl"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || die "needs Node.js >= 20 (found $(node --version))"

# playwright-core only (it never downloads a browser); installed once outside the repository.
if [ ! -f "$PLAYWRIGHT_DIR/node_modules/playwright-core/package.json" ]; then
  echo "browser-check: installing playwright-core@$playwright_version into $PLAYWRIGHT_DIR"
  mkdir -p "$PLAYWRIGHT_DIR"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$PLAYWRIGHT_DIR" \
    --no-audit --no-fund --loglevel=error "playwright-core@$playwright_version"
fi

if [ -z "${OAUTH_MCP_BIN:-}" ]; then
  (cd "$root" && cargo build --release --bin oauth-mcp)
  OAUTH_MCP_BIN=${CARGO_TARGET_DIR:-$root/target}/release/oauth-mcp
fi
[ -x "$OAUTH_MCP_BIN" ] || die "no server binary at $OAUTH_MCP_BIN"

if curl -s -o /dev/null "$OAUTH_MCP_URL/"; then
  die "something already listens on port $port; set PORT"
fi

mkdir -p "$SCREENSHOT_DIR"
data_dir=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data_dir"
}
trap cleanup EXIT

RUST_LOG=${RUST_LOG:-warn} "$OAUTH_MCP_BIN" --data-dir "$data_dir" --bind "127.0.0.1:$port" \
  >"$SCREENSHOT_DIR/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
  if curl -sf -o /dev/null "$OAUTH_MCP_URL/.well-known/oauth-authorization-server"; then
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || die "the server exited; see $SCREENSHOT_DIR/server.log"
  sleep 0.1
done
curl -sf -o /dev/null "$OAUTH_MCP_URL/.well-known/oauth-authorization-server" \
  || die "the server did not start; see $SCREENSHOT_DIR/server.log"

node "$root/tools/browser-check.mjs"
