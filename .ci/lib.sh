# Shared by the CI stages that run a server (.ci/examples.sh, .ci/conformance.sh); sourced
# after they define log() and die(). Sets WORK (a temporary directory) and SERVER_PID, and
# traps EXIT so that the server is stopped (TERM, then KILL after 5 s) and WORK removed
# whatever happened.

WORK="$(mktemp -d)"
SERVER_PID=""
stop_server_and_clean() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop_server_and_clean EXIT
trap 'exit 130' INT TERM

# await_server FILE SED_SCRIPT SERVER_LOG: prints the first line SED_SCRIPT (a `sed -n`
# script) prints from FILE, where the server started as SERVER_PID announces where it
# listens. Waits up to 30 s; dies, showing SERVER_LOG, if the server exits or stays silent.
await_server() {
  local file="$1" script="$2" server_log="$3" found=""
  for _ in $(seq 1 300); do
    found="$(sed -n "$script" "$file" | head -n1)"
    [ -n "$found" ] && { printf '%s\n' "$found"; return 0; }
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$server_log" >&2; die "the server exited"; }
    sleep 0.1
  done
  cat "$server_log" >&2
  die "the server did not say where it listens within 30 s"
}
