#!/usr/bin/env bash
# Throughput of the whole field workflow across the three services (issue #6): book (compliance
# incl. the accounts lookup, customer-notice outbox) → notice delivered → confirm, then two
# check-ins (each re-checking compliance through scheduling and accounts) → outcome (a promise,
# queued to accounts) → check-out (completion queued to scheduling), with CREWS crews working
# concurrently, VISITS_PER_CREW visits each. Release builds on SQLite, dev mode, the services'
# test clock moved by the tool into each visit slot. Prints the rates per phase.
#   CREWS="1 8 32" VISITS_PER_CREW=6 Scripts/bench-workflow.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CREWS=${CREWS:-"1 8 32"}
VISITS_PER_CREW=${VISITS_PER_CREW:-6}
for product in accounts scheduling visits doorstep workflow-bench; do swift build -c release --product "$product" >/dev/null; done
bin=.build/release
for crews in $CREWS; do
  work=$(mktemp -d)
  "$bin/doorstep" keygen --key-file "$work/auth.key" >/dev/null
  for name in accounts scheduling visits; do mkdir -p "$work/$name"; cp "$work/auth.key" "$work/$name/auth.key"; done
  echo 0 > "$work/clock"
  start() { # name extra...
    local name=$1; shift
    "$bin/$name" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/$name" --test-clock-offset-file "$work/clock" \
      --log-level error "$@" > "$work/$name.out" 2> "$work/$name.err" &
    echo $! >> "$work/pids"  # start runs in $(…), a subshell: its children are not this shell's jobs
    for _ in $(seq 100); do grep -q " ready " "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
    grep -o 'grpc=[^ ]*' "$work/$name.out" | cut -d= -f2
  }
  a=$(start accounts)
  s=$(start scheduling --accounts-addr "$a")
  v=$(start visits --accounts-addr "$a" --scheduling-addr "$s")
  "$bin/workflow-bench" --accounts "$a" --scheduling "$s" --visits "$v" --key-file "$work/auth.key" --clock-file "$work/clock" \
    --crews "$crews" --visits-per-crew "$VISITS_PER_CREW"
  pids=$(cat "$work/pids")
  kill $pids 2>/dev/null || true
  for pid in $pids; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
  rm -rf "$work"
done
