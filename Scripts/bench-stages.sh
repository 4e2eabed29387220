#!/usr/bin/env bash
# The accounts service at scale (issue #4): ACCOUNTS generated accounts (default 1,000,000;
# accounts-loadgen), then
#   - EvaluateStages over all of them in batches of BATCH (default 100,000) through the real
#     release `accounts` process: wall time, accounts/s, the server's peak RSS (VmHWM);
#   - h2load GetAccount (c16 m32) and ListVisitCandidates for one region (c4 m1) on that data.
#
#   ACCOUNTS=200000 Scripts/bench-stages.sh
#   DATABASE=postgres Scripts/bench-stages.sh
#
#   DATABASE    sqlite (default: <work>/data/accounts.sqlite) or postgres: a private PostgreSQL
#               cluster with default durability (Scripts/bench-postgres.sh; PG_FSYNC=off and
#               PG_OPTIONS there), filled by accounts-loadgen --database-url and served by
#               accounts --database-url; the cluster is removed afterwards
#   ACCOUNTS, BATCH   accounts generated (1,000,000), accounts per EvaluateStages call (100,000)
#   WORK        keep the data directory here (SQLite only; kept afterwards)
#   SKIP_BUILD=1  use the release binaries in .build/release as they are (no swift build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ACCOUNTS=${ACCOUNTS:-1000000}; BATCH=${BATCH:-100000}; DATABASE=${DATABASE:-sqlite}
case $DATABASE in sqlite|postgres) ;; *) echo "bench-stages: DATABASE is sqlite or postgres, not $DATABASE" >&2; exit 2 ;; esac
command -v h2load >/dev/null || { echo "bench-stages: h2load missing (apt-get install nghttp2-client)" >&2; exit 2; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  for product in accounts doorstep accounts-loadgen; do swift build -c release --product "$product" >/dev/null; done
fi
bin=$root/.build/release
work=${WORK:-$(mktemp -d)}
source "$root/Scripts/bench-postgres.sh"  # functions only; bench_pg_stop does nothing unless started
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true
  bench_pg_stop
  [ -n "${WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# Where the accounts live: the data directory's SQLite file, or a database of a private cluster.
database_args=()
if [ "$DATABASE" = postgres ]; then
  bench_pg_start
  bench_pg_createdb accounts
  database_args=(--database-url "$(bench_pg_url accounts)")
fi
echo "bench-stages: $ACCOUNTS accounts on $DATABASE, batches of $BATCH"
/usr/bin/time -f "loadgen: %e s, peak RSS %M KiB" "$bin/accounts-loadgen" --data-dir "$work/data" --accounts "$ACCOUNTS" "${database_args[@]}"
if [ "$DATABASE" = postgres ]; then
  echo "$(bench_pg_size accounts)	PostgreSQL database accounts"
else
  du -sh "$work/data/accounts.sqlite"
fi
"$bin/doorstep" keygen --key-file "$work/auth.key" >/dev/null
token=$("$bin/doorstep" token --role platform --subject bench --lifetime-seconds 86400 --key-file "$work/auth.key")
"$bin/accounts" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/data" --auth-key-file "$work/auth.key" \
  "${database_args[@]}" --log-level warning >"$work/accounts.out" 2>"$work/accounts.log" &
pid=$!
for _ in $(seq 1 200); do grep -q ' ready ' "$work/accounts.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$work/accounts.out")
[ -n "$addr" ] || { echo "bench-stages: accounts did not start" >&2; cat "$work/accounts.log" >&2; exit 1; }
rss() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
echo "server peak RSS before: $(rss) KiB"

call() { "$bin/doorstep" call "$addr" "$1" "$2" --token "$token" --timeout 3600; }
token_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
page=""; n=0; evaluated=0
start=$(date +%s.%N)
while :; do
  n=$((n + 1))
  out=$(call doorstep.accounts.v1.Accounts/EvaluateStages "{\"requestId\":\"bench-eval-$n\",\"pageSize\":$BATCH,\"pageToken\":\"$page\"}")
  evaluated=$((evaluated + $(echo "$out" | token_field accountsEvaluated | sed 's/^$/0/')))
  page=$(echo "$out" | token_field nextPageToken)
  [ -n "$page" ] || break
done
end=$(date +%s.%N)
python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); print(f'EvaluateStages: {int(sys.argv[3])} accounts in {int(sys.argv[4])} batches, {t:.1f} s, {int(sys.argv[3])/t:,.0f} accounts/s')" "$start" "$end" "$evaluated" "$n"
echo "last batch: $(echo "$out" | head -c 400)"
echo "server peak RSS after EvaluateStages: $(rss) KiB"

account_id=$(call doorstep.accounts.v1.Accounts/ListAccounts '{"pageSize":1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accounts"][0]["id"])')
python3 - "$account_id" "$work" <<'PY'
import struct, sys
def frame(message): return b"\0" + struct.pack(">I", len(message)) + message
def string(field, text): return bytes([field << 3 | 2, len(text)]) + text.encode()
open(sys.argv[2] + "/get.bin", "wb").write(frame(string(1, sys.argv[1])))
open(sys.argv[2] + "/candidates.bin", "wb").write(frame(string(1, "310100") + b"\x10\x32"))  # region, page_size 50
PY
headers=(-H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $token")
run() { # label path body args...
  local label=$1 path=$2 body=$3; shift 3
  h2load -t 1 "$@" "${headers[@]}" -d "$body" "http://$addr$path" >"$work/h2.txt" 2>&1 || true
  printf '%-40s %s | %s\n' "$label" "$(grep -a 'finished in' "$work/h2.txt")" "$(grep -a 'status codes' "$work/h2.txt")"
  grep -a 'time for request' "$work/h2.txt" | head -1
}
run "GetAccount (c16 m32)" /doorstep.accounts.v1.Accounts/GetAccount "$work/get.bin" -n 100000 -c 16 -m 32
run "ListVisitCandidates 310100 (c4 m1)" /doorstep.accounts.v1.Accounts/ListVisitCandidates "$work/candidates.bin" -n 200 -c 4 -m 1
echo "server peak RSS at the end: $(rss) KiB"
# Anything the service logged (warnings and worse) during the run.
[ -s "$work/accounts.log" ] && sed 's/^/accounts log: /' "$work/accounts.log" | head -20
true
