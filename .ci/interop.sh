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
#     mode "auto": the newest version both sides speak) and ts_client.mjs, each registering;
#     then each once more identified by a client ID metadata document instead: the SDKs
#     accept only https document URLs, so the stage makes a CA and a certificate for
#     127.0.0.1 (openssl), serves the documents over https (document_host.py), and the
#     server trusts that CA for document hosts (--client-metadata-ca-file) and fetches from
#     loopback (--client-metadata-allow-private); any exiting non-zero fails the stage;
#  4. MCP Inspector (web mode; .ci/interop/inspector/, pinned), the way a person uses it:
#     started with its browser auto-open off and an in-memory secret store (no OS keyring),
#     its page driven in headless Chromium (Debian's package, installed when missing) by
#     inspector/inspector.mjs: switch the server on, sign in and approve on our page, back
#     to "Connected", the Tools tab lists the tools. It needs Node >= 22.19: on an older
#     node the npm package node-linux-<arch> of a pinned Node 22 goes into target/interop/;
#  5. stops the Inspector and the server (trap), whatever happened.
#
# Output of each run, the server's, the document host's and the Inspector's logs and the
# Inspector's screenshot stay in target/interop/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
OUT="$REPO/target/interop"
CLIENT_TIMEOUT_S="${CLIENT_TIMEOUT_S:-120}"

log() { printf '[interop] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

for cmd in python3 node npm openssl setsid; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is required"
done
mkdir -p "$OUT"
rm -f "$OUT"/*.log
# shellcheck source=.ci/lib.sh
source "$REPO/.ci/lib.sh"
INSPECTOR_PID=""
DOCUMENT_HOST_PID=""
stop_all() {
  # The Inspector runs in its own process group (setsid): end the whole group.
  [ -n "$INSPECTOR_PID" ] && kill -TERM -- "-$INSPECTOR_PID" 2>/dev/null || true
  [ -n "$DOCUMENT_HOST_PID" ] && kill -TERM "$DOCUMENT_HOST_PID" 2>/dev/null || true
  stop_server_and_clean
}
trap stop_all EXIT
NODE22_VERSION=22.23.5

# --- 1. the clients -----------------------------------------------------------------------
start_s=$SECONDS
if [ ! -x "$OUT/venv/bin/python" ]; then
  log "creating the Python environment"
  python3 -m venv "$OUT/venv"
fi
"$OUT/venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/interop/requirements.txt
log "installing the TypeScript SDK (npm ci)"
(cd .ci/interop && npm ci --no-audit --no-fund --loglevel=error)
log "installing MCP Inspector and playwright-core (npm ci)"
(cd .ci/interop/inspector && npm ci --no-audit --no-fund --loglevel=error)
NODE22=node
major="$(node -p 'process.versions.node.split(".").map(Number).reduce((a, b, i) => i < 2 ? a * 100 + b : a)')"
if [ "$major" -lt 2219 ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) die "node $(node --version) is older than 22.19 and no node-linux package is known for $(uname -m)" ;;
  esac
  NODE22="$OUT/node22/node_modules/node-linux-$arch/bin/node"
  if [ ! -x "$NODE22" ]; then
    log "installing Node $NODE22_VERSION for MCP Inspector (node-linux-$arch)"
    mkdir -p "$OUT/node22"
    (cd "$OUT/node22" && npm install --no-save --no-audit --no-fund --loglevel=error \
      --prefix . "node-linux-$arch@$NODE22_VERSION")
  fi
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  log "installing chromium from the distribution's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

cargo build --bin oauth-mcp
BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/oauth-mcp"

# --- 2. the document host and the server --------------------------------------------------
# A CA of this run's own and a certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=oauth-mcp interop CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$WORK/host.key" -out "$WORK/host.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/host.ext"
openssl x509 -req -in "$WORK/host.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 1 -extfile "$WORK/host.ext" -out "$WORK/host.pem" 2>/dev/null
mkdir -p "$WORK/documents"
"$OUT/venv/bin/python" .ci/interop/document_host.py "$WORK/documents" "$WORK/host.pem" "$WORK/host.key" \
  >"$WORK/document-host.port" 2>"$OUT/document-host.log" &
DOCUMENT_HOST_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/document-host.port" ] && break; sleep 0.1; done
DOCUMENT_PORT="$(head -n1 "$WORK/document-host.port")"
[ -n "$DOCUMENT_PORT" ] || die "the document host did not start"
DOCS="https://127.0.0.1:$DOCUMENT_PORT"
# document NAME CLIENT_NAME REDIRECT_URI: the client ID metadata document $DOCS/NAME.json.
document() {
  printf '{"client_id":"%s/%s.json","client_name":"%s","redirect_uris":["%s"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}\n' \
    "$DOCS" "$1" "$2" "$3" >"$WORK/documents/$1.json"
}
document python "interop: python mcp (document)" "http://127.0.0.1:53682/callback"
document typescript "interop: typescript sdk (document)" "http://127.0.0.1:53683/callback"
log "document host up: $DOCS"

"$BIN" --bind 127.0.0.1:0 --data-dir "$WORK/data" --access-token-ttl 2 --log-json \
  --client-metadata-allow-private --client-metadata-ca-file "$WORK/ca.pem" \
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
run python-document "$OUT/venv/bin/python" .ci/interop/python_client.py "$URL" demo_user demo_password auto "$DOCS/python.json"
run typescript-document node .ci/interop/ts_client.mjs "$URL" demo_user demo_password "$DOCS/typescript.json"

# --- 4. MCP Inspector in headless Chromium ------------------------------------------------
INSPECTOR_TOKEN="$(openssl rand -hex 16)"
INSPECTOR_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# Its own HOME: the Inspector keeps OAuth state in ~/.mcp-inspector/, and a registration left
# there by an earlier run would point at a client this fresh server never had.
mkdir -p "$WORK/inspector-home"
NODE22_DIR="$(dirname "$(command -v "$NODE22")")"
PATH="$NODE22_DIR:$PATH" HOME="$WORK/inspector-home" MCP_AUTO_OPEN_ENABLED=false \
  MCP_INSPECTOR_SECRET_STORE=memory MCP_INSPECTOR_API_TOKEN="$INSPECTOR_TOKEN" CLIENT_PORT="$INSPECTOR_PORT" \
  setsid "$NODE22" .ci/interop/inspector/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js \
  --web --server-url "$URL" --transport http >"$OUT/inspector-server.log" 2>&1 &
INSPECTOR_PID=$!
INSPECTOR_URL=""
for _ in $(seq 1 300); do
  INSPECTOR_URL="$(sed -n 's#^ *\(http://127\.0\.0\.1:[0-9]*?MCP_INSPECTOR_API_TOKEN=[0-9a-f]*\)$#\1#p' "$OUT/inspector-server.log" | head -n1)"
  [ -n "$INSPECTOR_URL" ] && break
  kill -0 "$INSPECTOR_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$INSPECTOR_URL" ]; then
  cat "$OUT/inspector-server.log" >&2
  FAILED+=("MCP Inspector did not start")
else
  log "MCP Inspector up: ${INSPECTOR_URL%%\?*}"
  run inspector "$NODE22" .ci/interop/inspector/inspector.mjs "$INSPECTOR_URL" demo_user demo_password "$OUT"
fi

if [ "${#FAILED[@]}" -gt 0 ]; then
  for f in "${FAILED[@]}"; do log "FAIL: $f"; done
  tail -n 40 "$OUT/server.log" >&2 || true
  exit 1
fi
log "the Python and TypeScript SDK clients and MCP Inspector completed the flow ($((SECONDS - start_s)) s)"
