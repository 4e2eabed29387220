#!/usr/bin/env bash
# PostgreSQL for the benchmarks, in two ways.
#
# Sourced (by bench-stages.sh, bench-accounts.sh and bench-workflow.sh when DATABASE=postgres):
# functions that start a private PostgreSQL 15 cluster for one benchmark run and stop it again.
#   bench_pg_start         initdb in a new /tmp directory, server on a free loopback port
#   bench_pg_createdb NAME an empty database NAME
#   bench_pg_url NAME      prints postgres://postgres@127.0.0.1:PORT/NAME (a service's --database-url)
#   bench_pg_size NAME     prints the database's size on disk (pg_database_size)
#   bench_pg_stop          stops the server and removes its directory (call it from the EXIT trap)
# Unlike Scripts/with-postgres.sh (a throwaway cluster for tests, fsync=off), the benchmark
# cluster keeps PostgreSQL's default durability, fsync=on and synchronous_commit=on: every
# commit waits for its WAL flush, as every SQLite commit waits for its fsync
# (synchronous=FULL). Knobs:
#   PG_FSYNC=off     turn fsync off (figures then no longer comparable with SQLite's)
#   PG_OPTIONS="..." more server settings, e.g. PG_OPTIONS="-c shared_buffers=1GB"
#   PG_LOG_COPY=FILE  a copy of the server's log when it stops
# The server gets shared_buffers=256MB (as with-postgres.sh), max_connections=200 and a log
# line prefix naming the database; every other setting is PostgreSQL's default. When stopped,
# the server's errors and the statements they ended are summarised (most frequent first).
#
# Run directly: the closing benchmark of the PostgreSQL issue, every figure in one session,
# each PostgreSQL figure beside its SQLite baseline measured minutes apart on the same machine:
#   1. bench-stages.sh:   EvaluateStages over ACCOUNTS accounts, SQLite then PostgreSQL
#   2. bench-accounts.sh: GetAccount req/s, SQLite one replica, PostgreSQL one and two replicas
#   3. bench-workflow.sh: workflow visits/s at CREWS crews, SQLite then PostgreSQL
#
#   Scripts/bench-postgres.sh                        # ACCOUNTS=1000000 CREWS=32 C=16 M=32
#   ACCOUNTS=200000 STEPS="accounts workflow" Scripts/bench-postgres.sh
#   SKIP_BUILD=1 Scripts/bench-postgres.sh           # use the release binaries already built
#   RUNS=3 STEPS="accounts workflow" Scripts/bench-postgres.sh   # the short steps three times,
#                                                    # SQLite and PostgreSQL alternating
#
# Each step's output goes to the terminal and to LOG_DIR (default a new /tmp/doorstep-bench.*),
# with the machine's load average (uptime) before and after it: the machine is shared, so a
# step whose load rose a lot while it ran is worth repeating. Nothing is pinned to a CPU. A
# step that fails (say workflow-bench stopped by an UNAVAILABLE answer) is marked FAILED and the
# session goes on; the driver then exits 1. The release builds (skipped with SKIP_BUILD=1) run
# one at a time under flock on BUILD_LOCK (default /tmp/doorstep-build.lock), the lock other
# builds in this tree take, and the steps themselves then build nothing.

bench_pg_start() {
  bench_pg_bin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  [ -x "$bench_pg_bin/initdb" ] || { echo "bench-postgres: no PostgreSQL server binaries (apt-get install postgresql-15)" >&2; return 1; }
  bench_pg_base=$(mktemp -d /tmp/doorstep-bench-pg.XXXXXX)
  mkdir -p "$bench_pg_base/socket"
  # A free port: bind port 0 and read it back (if another process takes it first, the start
  # fails loudly).
  bench_pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
    chown -R postgres:postgres "$bench_pg_base"
    chmod 755 "$bench_pg_base"
  fi
  bench_pg_as_owner "$bench_pg_bin/initdb" -D "$bench_pg_base/data" -U postgres --auth=trust -E UTF8 --no-locale \
    >"$bench_pg_base/initdb.log" 2>&1 || { cat "$bench_pg_base/initdb.log" >&2; return 1; }
  # The log names each line's database (%d), so that a failure points at its service.
  local options="-p $bench_pg_port -k $bench_pg_base/socket -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB"
  options+=" -c log_line_prefix='%m [%p] %d '"
  [ "${PG_FSYNC:-on}" = off ] && options+=" -c fsync=off"
  options+=" ${PG_OPTIONS:-}"
  bench_pg_as_owner "$bench_pg_bin/pg_ctl" -D "$bench_pg_base/data" -l "$bench_pg_base/server.log" -w -t 60 -o "$options" start \
    >/dev/null || { cat "$bench_pg_base/server.log" >&2; return 1; }
  echo "bench-postgres: PostgreSQL $("$bench_pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$bench_pg_port," \
    "fsync=$(bench_pg_sql postgres 'SHOW fsync') synchronous_commit=$(bench_pg_sql postgres 'SHOW synchronous_commit')" \
    "shared_buffers=$(bench_pg_sql postgres 'SHOW shared_buffers') (data $bench_pg_base/data)"
}

bench_pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

bench_pg_sql() { # database sql
  "$bench_pg_bin/psql" -X -q -t -A -h 127.0.0.1 -p "$bench_pg_port" -U postgres -d "$1" -c "$2"
}

bench_pg_createdb() { bench_pg_sql postgres "CREATE DATABASE $1" >/dev/null; }

bench_pg_url() { echo "postgres://postgres@127.0.0.1:$bench_pg_port/$1"; }

bench_pg_size() { bench_pg_sql "$1" "SELECT pg_size_pretty(pg_database_size('$1'))"; }

bench_pg_stop() {
  [ -n "${bench_pg_base:-}" ] || return 0
  bench_pg_as_owner "$bench_pg_bin/pg_ctl" -D "$bench_pg_base/data" -m fast -w stop >/dev/null 2>&1 || true
  # The server log may show errors the benchmark's own output does not: keep its problems.
  # (the timestamp and process id cut off so that repeats count together).
  grep -E 'ERROR|FATAL|PANIC' "$bench_pg_base/server.log" 2>/dev/null | sed 's/^[^]]*] //' | sort | uniq -c | sort -rn \
    | head -8 | sed 's/^/bench-postgres: server log: /' >&2 || true
  # The statements those errors ended (the server logs each failed statement after its
  # error), most frequent first.
  grep -E '^[^]]*] [a-z_]* *STATEMENT:' "$bench_pg_base/server.log" 2>/dev/null | sed 's/^[^]]*] //; s/STATEMENT: *//' | cut -c1-160 \
    | sort | uniq -c | sort -rn | head -6 | sed 's/^/bench-postgres: failed statement: /' >&2 || true
  # PG_LOG_COPY=FILE keeps the whole server log (e.g. with PG_OPTIONS="-c log_min_duration_statement=500").
  [ -z "${PG_LOG_COPY:-}" ] || cp "$bench_pg_base/server.log" "$PG_LOG_COPY" 2>/dev/null || true
  rm -rf "$bench_pg_base"
  bench_pg_base=""
}

# The driver: only when run, not when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  root=$(cd "$(dirname "$0")/.." && pwd)
  cd "$root"
  ACCOUNTS=${ACCOUNTS:-1000000}; CREWS=${CREWS:-32}; STEPS=${STEPS:-"stages accounts workflow"}; RUNS=${RUNS:-1}
  LOG_DIR=${LOG_DIR:-$(mktemp -d /tmp/doorstep-bench.XXXXXX)}
  mkdir -p "$LOG_DIR"
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    # One build at a time on this machine: others build in the same tree under this lock.
    for product in accounts scheduling visits doorstep accounts-loadgen rpc-bench-server workflow-bench; do
      flock "${BUILD_LOCK:-/tmp/doorstep-build.lock}" swift build -c release --product "$product" >/dev/null
    done
  fi
  # A step that fails is reported and the session goes on (a failure is a finding too); the
  # driver exits non-zero at the end if any did.
  failed=""
  step() { # log-name env... script
    local name=$1 outcome=done; shift
    echo "== $name: $* ($(date -u +%H:%M:%S) UTC; load before:$(uptime | sed 's/.*load average://'))" | tee "$LOG_DIR/$name.txt"
    env SKIP_BUILD=1 "$@" 2>&1 | tee -a "$LOG_DIR/$name.txt" || { outcome=FAILED; failed+=" $name"; }
    echo "== $name $outcome ($(date -u +%H:%M:%S) UTC; load after:$(uptime | sed 's/.*load average://'))" | tee -a "$LOG_DIR/$name.txt"
  }
  for s in $STEPS; do
    case $s in
      stages)
        step stages-sqlite DATABASE=sqlite ACCOUNTS="$ACCOUNTS" Scripts/bench-stages.sh
        step stages-postgres DATABASE=postgres ACCOUNTS="$ACCOUNTS" Scripts/bench-stages.sh ;;
      accounts)
        for run in $(seq 1 "$RUNS"); do
          step "accounts-sqlite-1.$run" DATABASE=sqlite REPLICAS=1 Scripts/bench-accounts.sh
          step "accounts-postgres-1.$run" DATABASE=postgres REPLICAS=1 Scripts/bench-accounts.sh
          step "accounts-postgres-2.$run" DATABASE=postgres REPLICAS=2 Scripts/bench-accounts.sh
        done ;;
      workflow)
        for run in $(seq 1 "$RUNS"); do
          step "workflow-sqlite.$run" DATABASE=sqlite CREWS="$CREWS" Scripts/bench-workflow.sh
          step "workflow-postgres.$run" DATABASE=postgres CREWS="$CREWS" Scripts/bench-workflow.sh
        done ;;
      *) echo "bench-postgres: unknown step $s (stages, accounts, workflow)" >&2; exit 2 ;;
    esac
  done
  echo "bench-postgres: logs in $LOG_DIR"
  [ -z "$failed" ] || { echo "bench-postgres: failed steps:$failed" >&2; exit 1; }
fi
