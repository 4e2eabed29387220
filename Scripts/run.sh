#!/usr/bin/env bash
# Builds and starts the whole Doorstep system locally: the accounts, scheduling and visits
# services, one dev signing key (./data/auth.key) shared by all three so one token works
# everywhere. Ctrl-C (or SIGTERM) stops all three gracefully (they drain in-flight calls).
#
# Database (DOORSTEP_DATABASE):
#   sqlite (default)  the embedded default: each service's SQLite database under ./data/<service>.
#   postgres          a private local PostgreSQL 15 server for this checkout: a cluster created
#                     once (initdb) in ./data/postgres/data and reused on later runs, listening
#                     on 127.0.0.1:DOORSTEP_PG_PORT (default 55432, away from a system server's
#                     5432) and on a Unix socket in ./data/postgres/socket, log in
#                     ./data/postgres/server.log. Trust authentication: anyone on this machine
#                     can connect as `postgres`, so it is for local development only. Each service
#                     gets its own database (doorstep_accounts, doorstep_scheduling,
#                     doorstep_visits), created when missing. Run as root, the cluster belongs to
#                     and runs as the `postgres` user (the server refuses to run as root).
#                     Ctrl-C stops the services first, then the server. Needs the postgresql-15
#                     package (Scripts/install-deps.sh); PGBIN overrides /usr/lib/postgresql/15/bin.
#
# Environment: DOORSTEP_DATA_ROOT (default ./data), DOORSTEP_HOST (default 127.0.0.1),
# DOORSTEP_LOG_LEVEL (default info), SKIP_INSTALL=1 / SKIP_BUILD=1 to skip those steps,
# DOORSTEP_DEMO=1 to seed a demo city once per database (3 agencies, 36 collectors,
# DOORSTEP_DEMO_DEBTORS debtors with accounts at every stage, default 2000) through the gRPC
# API. The demo runs in dev mode (the shared key copied into each data directory) with the
# test clock on ./data/clock-offset, so that Scripts/demo-walk.sh can move time into a visit's
# window (Scripts/demo-reset.sh sets it back).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Checked before installing and building, so that a typo fails at once.
database=${DOORSTEP_DATABASE:-sqlite}
case "$database" in
  sqlite|postgres) ;;
  *) echo "run: DOORSTEP_DATABASE must be sqlite or postgres, not '$database'" >&2; exit 2 ;;
esac
[ "${SKIP_INSTALL:-0}" = 1 ] || Scripts/install-deps.sh
[ "${SKIP_BUILD:-0}" = 1 ] || swift build
bin=$(swift build --show-bin-path)
data=${DOORSTEP_DATA_ROOT:-$root/data}
host=${DOORSTEP_HOST:-127.0.0.1}
mkdir -p "$data"
key="$data/auth.key"
[ -f "$key" ] || "$bin/doorstep" keygen --key-file "$key"

pids=()
pg_started=0
stop() {
  trap - INT TERM
  echo "run: stopping…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  echo "run: stopped"
  exit "$status"   # the EXIT trap then stops PostgreSQL, after the services
}
trap stop INT TERM

if [ "$database" = postgres ]; then
  pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
  pgport=${DOORSTEP_PG_PORT:-55432}
  pgroot=$data/postgres
  pgdata=$pgroot/data
  pgsocket=$pgroot/socket
  [ -x "$pgbin/initdb" ] || { echo "run: no PostgreSQL server in $pgbin (apt-get install postgresql-15, or set PGBIN)" >&2; exit 1; }
  # The server refuses to run as root: as root, the cluster belongs to and runs as `postgres`.
  # (bash, not sh, runs the command: printf %q quotes for bash.)
  as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
      su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
    else
      "$@"
    fi
  }
  mkdir -p "$pgsocket"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres:postgres "$pgroot"
    # The server must be able to reach its directory through every parent.
    as_pg test -x "$pgroot" \
      || { echo "run: the postgres user cannot reach $pgroot (a parent directory is closed to it); set DOORSTEP_DATA_ROOT" >&2; exit 1; }
  fi
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    echo "run: creating the PostgreSQL cluster in $pgdata"
    as_pg "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --no-locale >"$pgroot/initdb.log" 2>&1 \
      || { cat "$pgroot/initdb.log" >&2; exit 1; }
  fi
  # A server left running by an earlier run that was killed outright would make `start` fail,
  # and may listen on another port: stop it, then start with this run's settings.
  if as_pg "$pgbin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    echo "run: stopping the PostgreSQL server an earlier run left running"
    as_pg "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null
  fi
  stop_postgres() {
    echo "run: stopping PostgreSQL…"
    as_pg "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null || echo "run: PostgreSQL did not stop; see $pgroot/server.log" >&2
  }
  # Whatever way the script ends from here on (Ctrl-C, a service exiting, a failed step), the
  # server is stopped last.
  trap 'if [ "$pg_started" = 1 ]; then stop_postgres; fi' EXIT
  pg_started=1
  as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$pgroot/server.log" -w -t 60 \
    -o "-p $pgport -k '$pgsocket' -c listen_addresses=127.0.0.1" start >/dev/null \
    || { pg_started=0; echo "run: PostgreSQL did not start on 127.0.0.1:$pgport (port taken? set DOORSTEP_PG_PORT); the end of $pgroot/server.log:" >&2
         tail -n 10 "$pgroot/server.log" >&2; exit 1; }
  for name in accounts scheduling visits; do
    exists=$("$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -d postgres -XtAc "SELECT 1 FROM pg_database WHERE datname = 'doorstep_$name'")
    [ "$exists" = 1 ] || "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U postgres "doorstep_$name"
  done
fi

demo=${DOORSTEP_DEMO:-0}
if [ "$demo" = 1 ]; then
  # Dev mode: each service reads <data-dir>/auth.key; the test clock is allowed only there.
  for name in accounts scheduling visits; do mkdir -p "$data/$name"; cp "$key" "$data/$name/auth.key"; done
  [ -f "$data/clock-offset" ] || echo 0 > "$data/clock-offset"
  identity=(--test-clock-offset-file "$data/clock-offset")
else
  identity=(--auth-key-file "$key")
fi

# The commit the services report as doorstep_build_info on /metrics.
export DOORSTEP_BUILD_COMMIT=${DOORSTEP_BUILD_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}

start() { # name grpc-port metrics-port
  local name=$1 port=$2 metrics=$3
  # On PostgreSQL the data directory still holds the service's dev-mode keys.
  local storage=()
  [ "$database" = postgres ] && storage=(--database-url "postgres://postgres@127.0.0.1:$pgport/doorstep_$name")
  "$bin/$name" --listen "$host:$port" --metrics-listen "$host:$metrics" --data-dir "$data/$name" \
    "${storage[@]}" "${identity[@]}" --accounts-addr "$host:50051" --scheduling-addr "$host:50052" --visits-addr "$host:50053" \
    --log-level "${DOORSTEP_LOG_LEVEL:-info}" > >(sed -u "s/^/[$name] /") 2> >(sed -u "s/^/[$name] /" >&2) &
  pids+=($!)
}
start accounts 50051 9101
start scheduling 50052 9102
start visits 50053 9103

# Wait until all three answer health checks (or one of them exits).
for name_port in accounts:50051 scheduling:50052 visits:50053; do
  name=${name_port%%:*}; port=${name_port##*:}
  for _ in $(seq 1 100); do
    "$bin/doorstep" health "$host:$port" --timeout 1 >/dev/null 2>&1 && break
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "run: a service exited; see its output above" >&2; stop; }; done
    sleep 0.2
  done
done
# The demo is seeded once per database: the marker lives beside the data it describes (the
# PostgreSQL cluster's directory, removed with the cluster).
seeded=$data/.demo-seeded
stops="all three"
if [ "$database" = postgres ]; then
  seeded=$pgroot/.demo-seeded
  stops="all three, then PostgreSQL"
fi
if [ "$demo" = 1 ] && [ ! -f "$seeded" ]; then
  echo "run: seeding the demo city…"
  "$bin/demo-seed" --accounts "$host:50051" --scheduling "$host:50052" --key-file "$key" \
    --debtors "${DOORSTEP_DEMO_DEBTORS:-2000}" && touch "$seeded"
fi
cat <<INFO

Doorstep is running (data in $data):
  accounts    gRPC $host:50051   metrics http://$host:9101/metrics
  scheduling  gRPC $host:50052   metrics http://$host:9102/metrics
  visits      gRPC $host:50053   metrics http://$host:9103/metrics
Try:
  TOKEN=\$($bin/doorstep token --role platform --key-file $key)
  $bin/doorstep call $host:50052 doorstep.scheduling.v1.Scheduling/RegisterAgency '{"requestId":"demo-1","agency":{…}}' --token "\$TOKEN"
Ctrl-C stops $stops.
INFO
if [ "$database" = postgres ]; then
  echo "PostgreSQL 127.0.0.1:$pgport (cluster $pgdata, log $pgroot/server.log):"
  echo "  $pgbin/psql -h 127.0.0.1 -p $pgport -U postgres doorstep_accounts"
fi
[ "$demo" = 1 ] && echo "Walk a visit with the CLI (plan, book, notice, check in, promise, check out): Scripts/demo-walk.sh (again for another account; Scripts/demo-reset.sh puts the demo clock back)"
# If any service exits on its own, stop the others too.
wait -n "${pids[@]}" || true
echo "run: a service exited" >&2
stop
