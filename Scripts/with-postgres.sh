#!/usr/bin/env bash
# Runs a command with a private, throwaway PostgreSQL 15 server: a new cluster (initdb) in a
# temporary directory, on a free loopback port, owned by the `postgres` user when run as
# root; the command gets its URL in DOORSTEP_TEST_POSTGRES_URL (and PG* variables for psql).
# The server is stopped and its directory removed when the command ends, whatever its exit.
#
#   Scripts/with-postgres.sh swift test --skip-build --filter OutboxTests
#
#   DOORSTEP_PG_DIR   keep the cluster here instead of a temporary directory (kept afterwards)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }

pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$pgbin/initdb" ] || { echo "with-postgres: no PostgreSQL server binaries (apt-get install postgresql-15)" >&2; exit 1; }

keep=0
if [ -n "${DOORSTEP_PG_DIR:-}" ]; then
  base=$DOORSTEP_PG_DIR
  keep=1
  mkdir -p "$base"
else
  base=$(mktemp -d /tmp/doorstep-pg.XXXXXX)
fi
data=$base/data
socket=$base/socket
mkdir -p "$socket"

# A free port: bind port 0 and read it back (another process may still take it before the
# server does; then the start fails loudly rather than silently using someone else's server).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres:postgres "$base"
  chmod 755 "$base"
fi

as_owner "$pgbin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$base/initdb.log" 2>&1 \
  || { cat "$base/initdb.log" >&2; exit 1; }
# fsync off: a throwaway test cluster (an immediate restart then takes ~0.2 s); enough
# connections for suites that open a pool per test.
as_owner "$pgbin/pg_ctl" -D "$data" -l "$base/server.log" -w -t 60 \
  -o "-p $port -k $socket -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400 -c shared_buffers=256MB" start >/dev/null \
  || { cat "$base/server.log" >&2; exit 1; }

stop() {
  as_owner "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  [ $keep -eq 1 ] || rm -rf "$base"
}
trap stop EXIT

export DOORSTEP_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
export DOORSTEP_TEST_PG_DATA=$data DOORSTEP_TEST_PG_BIN=$pgbin DOORSTEP_TEST_PG_PORT=$port DOORSTEP_TEST_PG_SOCKET=$socket
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
echo "with-postgres: PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $data)"
"$@"
