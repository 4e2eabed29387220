#!/usr/bin/env bash
# Throughput of the whole field workflow across the three services (issue #6): book (compliance
# incl. the accounts lookup, customer-notice outbox) → notice delivered → confirm, then two
# check-ins (each re-checking compliance through scheduling and accounts) → outcome (a promise,
# queued to accounts) → check-out (completion queued to scheduling), with CREWS crews working
# concurrently, VISITS_PER_CREW visits each. Release builds, dev mode, the services' test clock
# moved by the tool into each visit slot. Prints the rates per phase.
#   CREWS="1 8 32" VISITS_PER_CREW=6 Scripts/bench-workflow.sh
#   DATABASE=postgres CREWS=32 Scripts/bench-workflow.sh
#
#   DATABASE    sqlite (default: each service's SQLite file in its own data directory) or
#               postgres: one private PostgreSQL cluster per CREWS value, with default
#               durability (Scripts/bench-postgres.sh; PG_FSYNC=off and PG_OPTIONS there),
#               each service on its own database in it (accounts, scheduling, visits)
#   SKIP_BUILD=1  use the release binaries in .build/release as they are (no swift build)
#   CONSUMERS   "0 1" (default): each CREWS value is run twice, on fresh services: without
#               and with one `doorstep events tail` consumer per service reading every event as
#               it commits (the cost of the domain events' consumers); "0" or "1" for one run
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CREWS=${CREWS:-"1 8 32"}
VISITS_PER_CREW=${VISITS_PER_CREW:-6}
DATABASE=${DATABASE:-sqlite}
CONSUMERS=${CONSUMERS:-"0 1"}
case $DATABASE in sqlite|postgres) ;; *) echo "bench-workflow: DATABASE is sqlite or postgres, not $DATABASE" >&2; exit 2 ;; esac
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  for product in accounts scheduling visits doorstep workflow-bench; do swift build -c release --product "$product" >/dev/null; done
fi
bin=.build/release
source "$root/Scripts/bench-postgres.sh"  # functions only; bench_pg_stop does nothing unless started
work=""
# Stops the services of the current CREWS value (waiting until they are gone), its cluster, and
# removes its directory; also the EXIT trap, so an interrupted run leaves nothing behind.
stop_all() {
  [ -n "$work" ] || return 0
  local pids
  pids=$(cat "$work/pids" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    kill $pids 2>/dev/null || true
    for pid in $pids; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
  fi
  bench_pg_stop
  rm -rf "$work"
  work=""
}
trap stop_all EXIT
for crews in $CREWS; do
 for consumers in $CONSUMERS; do
  work=$(mktemp -d)
  "$bin/doorstep" keygen --key-file "$work/auth.key" >/dev/null
  for name in accounts scheduling visits; do mkdir -p "$work/$name"; cp "$work/auth.key" "$work/$name/auth.key"; done
  echo 0 > "$work/clock"
  if [ "$DATABASE" = postgres ]; then
    bench_pg_start
    for name in accounts scheduling visits; do bench_pg_createdb "$name"; done
  fi
  start() { # name extra...
    local name=$1; shift
    local database_args=()
    [ "$DATABASE" = postgres ] && database_args=(--database-url "$(bench_pg_url "$name")")
    "$bin/$name" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/$name" --test-clock-offset-file "$work/clock" \
      "${database_args[@]}" --log-level error "$@" > "$work/$name.out" 2> "$work/$name.err" &
    echo $! >> "$work/pids"  # start runs in $(…), a subshell: its children are not this shell's jobs
    for _ in $(seq 100); do grep -q " ready " "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
    grep -o 'grpc=[^ ]*' "$work/$name.out" | cut -d= -f2
  }
  a=$(start accounts)
  s=$(start scheduling --accounts-addr "$a")
  v=$(start visits --accounts-addr "$a" --scheduling-addr "$s")
  if [ "$consumers" = 1 ]; then
    echo "bench-workflow: $DATABASE, $crews crews, one events consumer per service"
    consumer_token=$("$bin/doorstep" token --role platform --subject bench-consumer --lifetime-seconds 86400 --key-file "$work/auth.key")
    for address in "$a" "$s" "$v"; do
      "$bin/doorstep" events tail "$address" --token "$consumer_token" -o text > "$work/events-${address##*:}.txt" 2>/dev/null &
      echo $! >> "$work/pids"
    done
  else
    echo "bench-workflow: $DATABASE, $crews crews, no events consumer"
  fi
  status=0
  "$bin/workflow-bench" --accounts "$a" --scheduling "$s" --visits "$v" --key-file "$work/auth.key" --clock-file "$work/clock" \
    --crews "$crews" --visits-per-crew "$VISITS_PER_CREW" || status=$?
  if [ "$consumers" = 1 ]; then
    sleep 1  # the last commits reach the consumers
    echo "events consumed: $(cat "$work"/events-*.txt | wc -l)"
  fi
  # Errors the services logged (they run at --log-level error): a clean run has none. Shown
  # also (above all) when the run failed.
  for name in accounts scheduling visits; do
    [ -s "$work/$name.err" ] && sed "s/^/$name log: /" "$work/$name.err" | head -10
  done
  stop_all
  [ "$status" -eq 0 ] || { echo "bench-workflow: workflow-bench failed (exit $status) at $crews crews on $DATABASE" >&2; exit "$status"; }
 done
done
