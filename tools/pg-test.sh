#!/usr/bin/env bash
# `cargo test` against a throw-away PostgreSQL cluster, as CI runs it: starts one (initdb in a
# temporary directory, 127.0.0.1 on a free port), runs `cargo test ARGS...` with
# OAUTH_MCP_TEST_DATABASE_URL pointing at it, and removes the cluster afterwards, whatever
# happened. Exits with cargo's status.
#
#   tools/pg-test.sh                        # the whole suite, sled and PostgreSQL
#   tools/pg-test.sh --test api refresh::   # any cargo test arguments
#
# Needs the PostgreSQL server binaries (Debian: apt-get install postgresql; elsewhere put
# initdb and pg_ctl on PATH or set OAUTH_MCP_PG_BINDIR) and python3. Runs as you; as root, the
# cluster runs as the postgres user. See .ci/postgres.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .ci/postgres.sh cargo test "$@"
