#!/usr/bin/env bash
# h2load against the real Accounts.GetAccount of a release-built `accounts` (bearer token,
# routing, metrics, the account read from its database, delinquency recomputed per call),
# beside rpc-bench-server's in-memory collection.v1 GetAccount measured in the same run as the
# baseline (same stack, no storage). After the c16 run it prints each replica's GetAccount
# reads per database statement (its /metrics: PostgreSQL coalesces concurrent reads).
#
#   Scripts/bench-accounts.sh            # N (200000), C (16), M (32), LAT_N (20000)
#   DATABASE=postgres REPLICAS=2 Scripts/bench-accounts.sh
#
#   DATABASE    sqlite (default: the account in <data-dir>/accounts.sqlite, read through GRDB)
#               or postgres: a private PostgreSQL cluster with default durability
#               (Scripts/bench-postgres.sh; PG_FSYNC=off and PG_OPTIONS there), one database
#               for all replicas
#   REPLICAS    1 (default) or 2 (postgres only): two accounts processes on the same database
#               and the same --data-key-file. h2load drives one host per run, so the c/m shape
#               is split: one h2load per replica, run at the same time, each with C/2
#               connections and N/2 requests; the script prints each replica's req/s, their
#               sum, and all requests over the longer of the two runs (the figure to quote).
#               The c1 m1 latency runs go to the first replica.
#   LOG_LEVEL   the accounts processes' --log-level (default notice: no access log, like the
#               in-memory baseline and the reference servers; info measures its cost)
#   SKIP_BUILD=1  use the release binaries in .build/release as they are (no swift build)
#   PIN=1       figures to report: the servers (and PostgreSQL) on CPU 0, h2load on CPU 1
#               (taskset); default unpinned
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${N:-200000}; C=${C:-16}; M=${M:-32}; LAT_N=${LAT_N:-20000}; DATABASE=${DATABASE:-sqlite}; REPLICAS=${REPLICAS:-1}
case $DATABASE in sqlite|postgres) ;; *) echo "bench-accounts: DATABASE is sqlite or postgres, not $DATABASE" >&2; exit 2 ;; esac
case $REPLICAS in 1) ;; 2) [ "$DATABASE" = postgres ] || { echo "bench-accounts: REPLICAS=2 needs DATABASE=postgres (replicas share one database)" >&2; exit 2; } ;;
  *) echo "bench-accounts: REPLICAS is 1 or 2, not $REPLICAS" >&2; exit 2 ;; esac
command -v h2load >/dev/null || { echo "bench-accounts: h2load missing (apt-get install nghttp2-client)" >&2; exit 2; }
SRV=(); CLI=()
if [ -n "${PIN:-}" ]; then
  command -v taskset >/dev/null || { echo "bench-accounts: PIN=1 needs taskset (util-linux)" >&2; exit 2; }
  SRV=(taskset -c 0); CLI=(taskset -c 1)
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  for product in accounts doorstep rpc-bench-server; do swift build -c release --product "$product" >/dev/null; done
fi
bin=$root/.build/release
work=$(mktemp -d)
source "$root/Scripts/bench-postgres.sh"  # functions only; bench_pg_stop does nothing unless started
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true
  bench_pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/doorstep" keygen --key-file "$work/auth.key" >/dev/null
token=$("$bin/doorstep" token --role platform --subject bench --lifetime-seconds 86400 --key-file "$work/auth.key")
# SQLite: one process, its data directory as before. PostgreSQL: every replica on the same
# database, sealing personal data with the same data key (and webhook secrets with the same
# webhook key).
database_args=()
label="accounts GetAccount (SQLite)"
if [ "$DATABASE" = postgres ]; then
  bench_pg_start
  # PIN=1: the PostgreSQL processes on the servers' CPU too (new backends inherit it from the
  # postmaster), as bench-stages.sh pins them: the database's work counts against the service.
  if [ -n "${PIN:-}" ]; then
    for p in $(pgrep -u postgres -x postgres); do taskset -a -p -c 0 "$p" >/dev/null 2>&1 || true; done
  fi
  bench_pg_createdb accounts
  "$bin/doorstep" keygen --data-key --key-file "$work/data.key" >/dev/null
  # Every replica seals webhook secrets with the same key too (without it the second refuses
  # to start: the database's secrets are sealed with the first one's own key).
  "$bin/doorstep" keygen --data-key --key-file "$work/webhook.key" >/dev/null
  database_args=(--database-url "$(bench_pg_url accounts)" --data-key-file "$work/data.key" --webhook-key-file "$work/webhook.key")
  label="accounts GetAccount (PostgreSQL)"
fi
for replica in $(seq 1 "$REPLICAS"); do
  "${SRV[@]}" "$bin/accounts" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$work/data$replica" --auth-key-file "$work/auth.key" \
    "${database_args[@]}" --log-level "${LOG_LEVEL:-notice}" >"$work/accounts$replica.out" 2>"$work/accounts$replica.log" &
  pids+=($!)
  # One at a time: the first runs the migrations, the second then finds them done.
  for _ in $(seq 1 200); do grep -q ' ready ' "$work/accounts$replica.out" 2>/dev/null && break; sleep 0.1; done
done
"${SRV[@]}" "$bin/rpc-bench-server" --port 0 --auth-key-file "$work/auth.key" --log-level notice >"$work/bench.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'serving gRPC' "$work/bench.out" 2>/dev/null && break; sleep 0.1; done
addrs=()
for replica in $(seq 1 "$REPLICAS"); do
  addrs+=("$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$work/accounts$replica.out")")
done
addr=${addrs[0]}
bench_port=$(sed -n 's/.*address=.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/bench.out" | head -1)
for a in "${addrs[@]}"; do
  [ -n "$a" ] && [ -n "$bench_port" ] || { echo "bench-accounts: servers did not start" >&2; cat "$work"/*.out "$work"/*.log >&2; exit 1; }
done

call() { "$bin/doorstep" call "$addr" "$1" "$2" --token "$token"; }
debtor=$(call doorstep.accounts.v1.Accounts/CreateDebtor '{"requestId":"bench-d1","debtor":{"externalId":"bench-1","fullName":"Bench Debtor","nationalId":"11010519491231002X","phone":"13812345678","address":{"text":"上海市浦东新区世纪大道100号","regionCode":"310115"},"timeZone":"Asia/Shanghai"}}')
debtor_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$debtor")
today=$(date -u +%Y-%m-%d)
account=$(python3 - "$debtor_id" <<'PY'
import datetime, json, sys
today = datetime.date.today()
def d(offset):
    x = today + datetime.timedelta(days=offset)
    return {"year": x.year, "month": x.month, "day": x.day}
money = lambda a: {"amountMinor": str(a), "currencyCode": "CNY"}
print(json.dumps({"requestId": "bench-a1", "debtorId": sys.argv[1], "externalId": "loan-bench-1", "lenderId": "lender-1",
  "product": "PRODUCT_TYPE_INSTALMENT_LOAN", "principal": money(1200000), "openedDate": d(-400),
  "instalments": [{"dueDate": d(-370 + 30 * i), "amountDue": money(100000)} for i in range(12)]}))
PY
)
account_id=$(call doorstep.accounts.v1.Accounts/OpenAccount "$account" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
# gRPC frames: GetAccountRequest{account_id} and collection.v1 GetAccountRequest{account_id: "acc-004242"}.
python3 - "$account_id" "$work" <<'PY'
import struct, sys
def frame(message): return b"\0" + struct.pack(">I", len(message)) + message
def field1(text): return b"\x0a" + bytes([len(text)]) + text.encode()
open(sys.argv[2] + "/accounts.bin", "wb").write(frame(field1(sys.argv[1])))
open(sys.argv[2] + "/bench.bin", "wb").write(frame(field1("acc-004242")))
PY
headers=(-H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $token")
run() { # name url body shape-args...
  local name=$1 url=$2 body=$3; shift 3
  "${CLI[@]}" h2load -t 1 "$@" "${headers[@]}" -d "$body" "$url" >"$work/h2.txt" 2>&1 || true
  local rps mean statuses
  rps=$(sed -n 's/.*finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$work/h2.txt")
  mean=$(awk '/time for request:/ {print $6 ", max " $5}' "$work/h2.txt")
  statuses=$(grep -a 'status codes' "$work/h2.txt" | sed 's/status codes: //')
  printf "%-34s c=%-4s m=%-4s %10s req/s   mean %-19s  %s\n" "$name" "$4" "$6" "$rps" "$mean" "$statuses"
}
# The c/m shape over both replicas at once: one h2load per replica with half the connections
# and half the requests, started together.
run_replicas() { # name body
  local name=$1 body=$2 replica
  local h2pids=()
  for replica in 1 2; do
    "${CLI[@]}" h2load -t 1 -n $((N / 2)) -c $((C / 2)) -m "$M" "${headers[@]}" -d "$body" \
      "http://${addrs[replica - 1]}/doorstep.accounts.v1.Accounts/GetAccount" >"$work/h2-$replica.txt" 2>&1 &
    h2pids+=($!)
  done
  wait "${h2pids[@]}" || true
  for replica in 1 2; do
    local rps mean statuses
    rps=$(sed -n 's/.*finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$work/h2-$replica.txt")
    mean=$(awk '/time for request:/ {print $6 ", max " $5}' "$work/h2-$replica.txt")
    statuses=$(grep -a 'status codes' "$work/h2-$replica.txt" | sed 's/status codes: //')
    printf "%-34s c=%-4s m=%-4s %10s req/s   mean %-19s  %s\n" "$name replica $replica" "$((C / 2))" "$M" "$rps" "$mean" "$statuses"
  done
  # The sum of the two rates, and the honest total: every request over the longer run.
  python3 - "$name" "$C" "$M" "$work/h2-1.txt" "$work/h2-2.txt" <<'PY'
import re, sys
name, c, m = sys.argv[1:4]
runs = []
for path in sys.argv[4:]:
    text = open(path, errors="replace").read()
    done = re.search(r"finished in ([0-9.]+)(us|ms|s), ([0-9.]+) req/s", text)
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text)
    if not done or not ok:
        print(f"{name} total: h2load did not finish ({path})"); sys.exit(0)
    seconds = float(done.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[done.group(2)]
    runs.append((seconds, float(done.group(3)), int(ok.group(1))))
total = sum(r[2] for r in runs) / max(r[0] for r in runs)
print(f"{name + ' x2 total':<34} c={c:<4} m={m:<4} {total:10.2f} req/s   (sum of rates {sum(r[1] for r in runs):.2f}; "
      f"{sum(r[2] for r in runs)} succeeded in {max(r[0] for r in runs):.2f} s)")
PY
}
url_accounts="http://$addr/doorstep.accounts.v1.Accounts/GetAccount"
url_bench="http://127.0.0.1:$bench_port/collection.v1.Accounts/GetAccount"
# Warm up every server, then measure each shape.
for a in "${addrs[@]}"; do
  "${CLI[@]}" h2load -t 1 -n 20000 -c "$C" -m "$M" "${headers[@]}" -d "$work/accounts.bin" "http://$a/doorstep.accounts.v1.Accounts/GetAccount" >/dev/null 2>&1 || true
done
"${CLI[@]}" h2load -t 1 -n 20000 -c "$C" -m "$M" "${headers[@]}" -d "$work/bench.bin" "$url_bench" >/dev/null 2>&1 || true
echo "account $account_id (12 instalments; grpc-status checked below by a real call); $DATABASE, $REPLICAS replica(s);" \
  "$([ -n "${PIN:-}" ] && echo "pinned: servers$([ "$DATABASE" = postgres ] && echo " and PostgreSQL") on CPU 0, h2load on CPU 1" || echo "unpinned")"
for a in "${addrs[@]}"; do
  "$bin/doorstep" call "$a" doorstep.accounts.v1.Accounts/GetAccount "{\"accountId\":\"$account_id\",\"view\":\"ACCOUNT_VIEW_BASIC\"}" \
    --token "$token" | head -c 200; echo
done
if [ "$REPLICAS" = 2 ]; then
  run_replicas "$label" "$work/accounts.bin"
else
  run "$label" "$url_accounts" "$work/accounts.bin" -n "$N" -c "$C" -m "$M"
fi
run "rpc-bench-server GetAccount (mem)" "$url_bench" "$work/bench.bin" -n "$N" -c "$C" -m "$M"
# Reads per statement so far (warm-up included): PostgreSQL coalesces concurrent GetAccount
# reads (PointReadBatcher); on SQLite every read is its own.
for replica in $(seq 1 "$REPLICAS"); do
  metrics=$(sed -n 's/.* metrics=\([^ ]*\).*/\1/p' "$work/accounts$replica.out" | head -1)
  [ -n "$metrics" ] || continue
  python3 - "$metrics" "$replica" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
def value(name):
    match = re.search(r'^' + name + r'\{reads="account"\} ([0-9.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0
count, total = value("doorstep_db_point_read_batch_size_count"), value("doorstep_db_point_read_batch_size_sum")
if count:
    print(f"replica {sys.argv[2]}: {int(total)} GetAccount reads in {int(count)} statements, {total / count:.1f} reads per statement")
PY
done
run "$label" "$url_accounts" "$work/accounts.bin" -n "$LAT_N" -c 1 -m 1
run "rpc-bench-server GetAccount (mem)" "$url_bench" "$work/bench.bin" -n "$LAT_N" -c 1 -m 1
# Warnings and errors the services logged during the run.
for replica in $(seq 1 "$REPLICAS"); do
  grep -aE '(warning|error|critical)' "$work/accounts$replica.log" "$work/accounts$replica.out" 2>/dev/null | head -10 \
    | sed "s/^/accounts replica $replica log: /" || true
done
