#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests that need one (issue 14). Two ways to use it:
#
#   .ci/postgres.sh COMMAND [ARGS...]   runs COMMAND with OAUTH_MCP_TEST_DATABASE_URL set and
#                                       exits with its status (.ci/run: `.ci/postgres.sh cargo
#                                       test`; tools/pg-test.sh);
#   source .ci/postgres.sh              (bash) starts the cluster, exports the variable, and
#                                       stops the cluster when the sourcing shell exits: the
#                                       EXIT trap already set is kept and runs after ours, so
#                                       source this after setting your own EXIT trap, and do
#                                       not replace the trap afterwards (add to it).
#
# What it does:
#  1. finds the server binaries: $OAUTH_MCP_PG_BINDIR, else the newest
#     /usr/lib/postgresql/*/bin (Debian), else the directory of `pg_ctl` on PATH; when there
#     are none and we are root with apt-get (CI: a fresh Debian machine, no systemd), installs
#     the distribution's `postgresql`, with create_main_cluster = false so that the package
#     neither creates nor starts a cluster of its own;
#  2. makes a cluster with initdb in a new temporary directory (superuser `postgres`, trust
#     authentication, UTF8, C locale), as the `postgres` user through runuser when root
#     (PostgreSQL refuses to run as root), as the current user otherwise;
#  3. starts it with `pg_ctl -w` on a free port of 127.0.0.1 only, its Unix socket in the
#     temporary directory (mode 0700), fsync and synchronous_commit on (the tests check
#     durability), max_connections 200, shared_buffers 32MB;
#  4. exports OAUTH_MCP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres;
#  5. on exit, whatever happened: `pg_ctl stop -m immediate` (KILL if that fails) and the
#     temporary directory removed.
#
# Trust authentication means any local user may connect as superuser while the cluster
# runs; it holds nothing but test data and lives as long as the command.
# Messages go to stderr, prefixed [postgres]. Needs bash, python3 (free port), and root
# only to install PostgreSQL.

_pg_log() { printf '[postgres] %s\n' "$*" >&2; }

_PG_TMP=""
_PG_BIN=""

# _pg_as_owner CMD...: runs CMD as the cluster's owner (postgres when we are root), from
# inside the temporary directory (the owner may not be able to read the caller's).
_pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$_PG_TMP" && runuser -u postgres -- "$@")
  else
    (cd "$_PG_TMP" && "$@")
  fi
}

# Prints the directory holding initdb and pg_ctl, or nothing.
_pg_find_bindir() {
  if [ -n "${OAUTH_MCP_PG_BINDIR:-}" ]; then
    [ -x "$OAUTH_MCP_PG_BINDIR/initdb" ] && printf '%s\n' "$OAUTH_MCP_PG_BINDIR"
    return 0
  fi
  local newest="" dir
  newest="$(for dir in /usr/lib/postgresql/*/bin; do
              [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && printf '%s\n' "$dir"
            done | sort -V | tail -n 1)"
  if [ -n "$newest" ]; then
    printf '%s\n' "$newest"
  elif command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
  fi
  return 0
}

_pg_install() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    _pg_log "no PostgreSQL server binaries found (initdb, pg_ctl): install PostgreSQL" \
      "(Debian: apt-get install postgresql) or set OAUTH_MCP_PG_BINDIR"
    return 1
  fi
  _pg_log "installing postgresql from the distribution's packages"
  # The package's configure step creates (and, where init scripts may run, starts) a
  # cluster "main" unless createcluster.conf says otherwise; we want only our own.
  local conf=/etc/postgresql-common/createcluster.conf
  mkdir -p /etc/postgresql-common || return 1
  if [ -f "$conf" ]; then
    sed -i '/^[#[:space:]]*create_main_cluster[[:space:]]*=/d' "$conf" || return 1
  fi
  printf 'create_main_cluster = false\n' >>"$conf" || return 1
  # Keep that file when postgresql-common installs its own (ucf and dpkg would ask).
  DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get update -qq || return 1
  DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq \
    --no-install-recommends -o Dpkg::Options::=--force-confold postgresql >/dev/null ||
    return 1
}

# Writes stdin to FILE (inside the cluster's directory) and gives it to the cluster's owner.
_pg_write() {
  cat >"$1" || return 1
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$1" || return 1; fi
}

pg_test_stop() {
  [ -n "$_PG_TMP" ] || return 0
  local data="$_PG_TMP/data" pid=""
  if [ -f "$data/postmaster.pid" ]; then
    pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
    _pg_as_owner "$_PG_BIN/pg_ctl" stop -D "$data" -m immediate -w -t 15 >/dev/null 2>&1 || true
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -rf "$_PG_TMP"
  _PG_TMP=""
  unset OAUTH_MCP_TEST_DATABASE_URL
  _pg_log "cluster stopped and removed"
}

pg_test_start() {
  if [ -n "$_PG_TMP" ]; then _pg_log "a cluster is already running"; return 1; fi
  _PG_BIN="$(_pg_find_bindir)"
  if [ -z "$_PG_BIN" ] && [ -n "${OAUTH_MCP_PG_BINDIR:-}" ]; then
    _pg_log "OAUTH_MCP_PG_BINDIR=$OAUTH_MCP_PG_BINDIR holds no initdb"
    return 1
  fi
  if [ -z "$_PG_BIN" ]; then
    _pg_install || { _pg_log "installing postgresql failed"; return 1; }
    _PG_BIN="$(_pg_find_bindir)"
    [ -n "$_PG_BIN" ] || { _pg_log "no initdb after installing postgresql"; return 1; }
  fi
  # The TLS tests make their certificates with the openssl command (a failure under CI=true
  # when it is missing): install it too where we may.
  if ! command -v openssl >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] &&
    command -v apt-get >/dev/null 2>&1; then
    _pg_log "installing openssl (for the database TLS tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl \
      >/dev/null || { _pg_log "installing openssl failed"; return 1; }
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 ||
      { _pg_log "running as root, but there is no postgres user to run the cluster"; return 1; }
    # /tmp, not $TMPDIR: the postgres user must be able to reach the directory.
    _PG_TMP="$(mktemp -d /tmp/oauth-mcp-pg.XXXXXX)" || return 1
    chown postgres:postgres "$_PG_TMP" || return 1
  else
    _PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/oauth-mcp-pg.XXXXXX")" || return 1
  fi
  chmod 700 "$_PG_TMP" || return 1
  local data="$_PG_TMP/data"

  # --no-sync: the catalog initdb writes need not survive a power cut; the server's own
  # writes are fsynced (fsync = on below).
  if ! _pg_as_owner "$_PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C \
       --no-sync >"$_PG_TMP/initdb.log" 2>&1; then
    cat "$_PG_TMP/initdb.log" >&2
    _pg_log "initdb failed"
    return 1
  fi
  printf '%s\n' '# oauth-mcp test cluster: the socket (0700 directory) and 127.0.0.1 only' \
    'local all all trust' 'host all all 127.0.0.1/32 trust' | _pg_write "$data/pg_hba.conf" ||
    return 1
  printf "include = 'oauth-mcp-test.conf'\n" >>"$data/postgresql.conf" || return 1

  # A port nothing listens on, from the kernel; taken again before the server binds it is
  # unlikely but possible, so try a few.
  local port="" attempt
  for attempt in 1 2 3; do
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')" ||
      { _pg_log "python3 is needed to pick a free port"; return 1; }
    printf '%s\n' "listen_addresses = '127.0.0.1'" "port = $port" \
      "unix_socket_directories = '$_PG_TMP'" \
      "max_connections = 200" "shared_buffers = 32MB" \
      "fsync = on" "synchronous_commit = on" "full_page_writes = on" \
      "logging_collector = off" | _pg_write "$_PG_TMP/data/oauth-mcp-test.conf" || return 1
    if _pg_as_owner "$_PG_BIN/pg_ctl" start -D "$data" -l "$_PG_TMP/server.log" -w -t 60 \
         >/dev/null 2>&1; then
      break
    fi
    tail -n 20 "$_PG_TMP/server.log" >&2 2>/dev/null || true
    _pg_log "the server did not start on port $port (attempt $attempt)"
    port=""
  done
  [ -n "$port" ] || return 1

  export OAUTH_MCP_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  _pg_log "$("$_PG_BIN/postgres" --version) at $OAUTH_MCP_TEST_DATABASE_URL (files in $_PG_TMP)"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced. The EXIT trap: stops the cluster, then runs the trap that was there before with the
  # shell's exit status in $? (`(exit N) || ...`, so that errexit does not end the trap).
  _PG_PREVIOUS_EXIT_TRAP=""
  _pg_exit_trap() {
    local status=$?
    pg_test_stop
    [ -n "$_PG_PREVIOUS_EXIT_TRAP" ] || return 0
    if [ "$status" -eq 0 ]; then
      eval "$_PG_PREVIOUS_EXIT_TRAP"
    else
      (exit "$status") || eval "$_PG_PREVIOUS_EXIT_TRAP"
    fi
  }
  # shellcheck disable=SC2120 # set -- parses the output of trap -p, not arguments
  _pg_chain_exit_trap() {
    local previous
    previous="$(trap -p EXIT)"
    if [ -n "$previous" ]; then
      eval "set -- $previous"   # trap -- 'COMMAND' EXIT
      _PG_PREVIOUS_EXIT_TRAP="$3"
    fi
    trap _pg_exit_trap EXIT
    # Without these a TERM or Ctrl-C would end the shell without the EXIT trap.
    [ -n "$(trap -p INT)" ] || trap 'exit 130' INT
    [ -n "$(trap -p TERM)" ] || trap 'exit 143' TERM
  }
  _pg_chain_exit_trap
  pg_test_start || { pg_test_stop; return 1; }
else
  set -uo pipefail
  if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]   (or: source $0)" >&2
    exit 2
  fi
  trap pg_test_stop EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  pg_test_start || exit 1
  "$@"
  exit $?
fi
