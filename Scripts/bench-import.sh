#!/usr/bin/env bash
# Bulk-loading benchmark (docs/OPERATIONS.md "Bulk loading"): `doorstep import accounts` of
# N generated accounts (default 1,000,000) into a release-built accounts service on SQLite,
# twice: the first pass creates every account, the second finds every record unchanged.
# Prints both passes' records/s and the server's peak resident memory (VmHWM).
# With EVENTS=1, one consumer then reads the domain events the import wrote (two per account:
# opened, and the opening stage) through WatchEvents with `doorstep events tail -o text`, the
# whole log and then one type of it (docs/EVENTS.md), and prints events/s of each read.
# Usage: Scripts/bench-import.sh   (N=…, SKIP_BUILD=1 to reuse .build/release, EVENTS=1)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${N:-1000000}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  for product in accounts doorstep; do flock /tmp/doorstep-build.lock swift build -c release --product "$product" >/dev/null; done
fi
bin=$root/.build/release
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
python3 "$root/Scripts/gen_import_file.py" "$N" "$work/accounts.jsonl"
"$bin/doorstep" keygen --key-file "$work/auth.key" >/dev/null
token=$("$bin/doorstep" token --role platform --subject bench --lifetime-seconds 86400 --key-file "$work/auth.key")
"$bin/accounts" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/data" --auth-key-file "$work/auth.key" \
  --log-level notice >"$work/accounts.out" 2>"$work/accounts.log" &
pid=$!
for _ in $(seq 1 200); do grep -q ' ready ' "$work/accounts.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$work/accounts.out")
[ -n "$addr" ] || { echo "bench-import: the accounts service did not start" >&2; cat "$work/accounts.log" >&2; exit 1; }
for pass in 1 2; do
  echo "pass $pass: $("$bin/doorstep" import accounts "$work/accounts.jsonl" --address "$addr" --token "$token" 2>/dev/null)"
done
if [ "${EVENTS:-0}" = 1 ]; then
  read_events() { # label, how many, extra arguments…
    local label=$1 limit=$2; shift 2
    local started ended count
    started=$(date +%s.%N)
    count=$("$bin/doorstep" events tail "$addr" --token "$token" -o text --limit "$limit" "$@" | wc -l)
    ended=$(date +%s.%N)
    python3 -c "import sys; n, s = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); print(f'$label: {n} events in {s:.2f} s: {n / s:,.0f} events/s')" \
      "$count" "$started" "$ended"
  }
  read_events "events, whole log, one consumer" $((2 * N))
  read_events "events, one type (stage_changed), one consumer" "$N" --type doorstep.accounts.account.stage_changed
fi
echo "server peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"
echo "database: $(du -sh "$work/data" | cut -f1)"
