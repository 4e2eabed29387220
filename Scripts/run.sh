#!/usr/bin/env bash
# Builds and starts the whole Doorstep system locally on its embedded default: the accounts,
# scheduling and visits services, each with its SQLite database under ./data/<service>, one
# dev signing key (./data/auth.key) shared by all three so one token works everywhere.
# Ctrl-C (or SIGTERM) stops all three gracefully (they drain in-flight calls).
#
# Environment: DOORSTEP_DATA_ROOT (default ./data), DOORSTEP_HOST (default 127.0.0.1),
# DOORSTEP_LOG_LEVEL (default info), SKIP_INSTALL=1 / SKIP_BUILD=1 to skip those steps,
# DOORSTEP_DEMO=1 to seed a demo city once (3 agencies, 36 collectors, DOORSTEP_DEMO_DEBTORS
# debtors with accounts at every stage, default 2000) through the gRPC API. The demo runs in
# dev mode (the shared key copied into each data directory) with the test clock on
# ./data/clock-offset, so that Scripts/demo-walk.sh can move time into a visit's window.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ "${SKIP_INSTALL:-0}" = 1 ] || Scripts/install-deps.sh
[ "${SKIP_BUILD:-0}" = 1 ] || swift build
bin=$(swift build --show-bin-path)
data=${DOORSTEP_DATA_ROOT:-$root/data}
host=${DOORSTEP_HOST:-127.0.0.1}
mkdir -p "$data"
key="$data/auth.key"
[ -f "$key" ] || "$bin/doorstep" keygen --key-file "$key"

pids=()
stop() {
  trap - INT TERM
  echo "run: stopping…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  echo "run: stopped"
  exit "$status"
}
trap stop INT TERM

demo=${DOORSTEP_DEMO:-0}
if [ "$demo" = 1 ]; then
  # Dev mode: each service reads <data-dir>/auth.key; the test clock is allowed only there.
  for name in accounts scheduling visits; do mkdir -p "$data/$name"; cp "$key" "$data/$name/auth.key"; done
  [ -f "$data/clock-offset" ] || echo 0 > "$data/clock-offset"
  identity=(--test-clock-offset-file "$data/clock-offset")
else
  identity=(--auth-key-file "$key")
fi

start() { # name grpc-port metrics-port
  local name=$1 port=$2 metrics=$3
  "$bin/$name" --listen "$host:$port" --metrics-listen "$host:$metrics" --data-dir "$data/$name" \
    "${identity[@]}" --accounts-addr "$host:50051" --scheduling-addr "$host:50052" --visits-addr "$host:50053" \
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
if [ "$demo" = 1 ] && [ ! -f "$data/.demo-seeded" ]; then
  echo "run: seeding the demo city…"
  "$bin/demo-seed" --accounts "$host:50051" --scheduling "$host:50052" --key-file "$key" \
    --debtors "${DOORSTEP_DEMO_DEBTORS:-2000}" && touch "$data/.demo-seeded"
fi
cat <<INFO

Doorstep is running (data in $data):
  accounts    gRPC $host:50051   metrics http://$host:9101/metrics
  scheduling  gRPC $host:50052   metrics http://$host:9102/metrics
  visits      gRPC $host:50053   metrics http://$host:9103/metrics
Try:
  TOKEN=\$($bin/doorstep token --role platform --key-file $key)
  $bin/doorstep call $host:50052 doorstep.scheduling.v1.Scheduling/RegisterAgency '{"requestId":"demo-1","agency":{…}}' --token "\$TOKEN"
Ctrl-C stops all three.
INFO
[ "$demo" = 1 ] && echo "Walk a visit with the CLI (plan, book, notice, check in, promise, check out): Scripts/demo-walk.sh"
# If any service exits on its own, stop the others too.
wait -n "${pids[@]}" || true
echo "run: a service exited" >&2
stop
