#!/usr/bin/env bash
# h2load against the real, SQLite-backed Accounts.GetAccount of a release-built `accounts`
# (bearer token, routing, metrics, SQLite read through GRDB, delinquency recomputed per call),
# beside rpc-bench-server's in-memory collection.v1 GetAccount measured in the same run as the
# baseline (same stack, no storage).
#
#   Scripts/bench-accounts.sh            # N (200000), C (16), M (32), LAT_N (20000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${N:-200000}; C=${C:-16}; M=${M:-32}; LAT_N=${LAT_N:-20000}
command -v h2load >/dev/null || { echo "bench-accounts: h2load missing (apt-get install nghttp2-client)" >&2; exit 2; }
for product in accounts doorstep rpc-bench-server; do swift build -c release --product "$product" >/dev/null; done
bin=$root/.build/release
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/doorstep" keygen --key-file "$work/auth.key" >/dev/null
token=$("$bin/doorstep" token --role platform --subject bench --lifetime-seconds 86400 --key-file "$work/auth.key")
"$bin/accounts" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/data" --auth-key-file "$work/auth.key" \
  --log-level info >"$work/accounts.out" 2>"$work/accounts.log" &
pids+=($!)
"$bin/rpc-bench-server" --port 0 --auth-key-file "$work/auth.key" --log-level info >"$work/bench.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q ' ready ' "$work/accounts.out" 2>/dev/null && grep -q 'serving gRPC' "$work/bench.out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$work/accounts.out")
bench_port=$(sed -n 's/.*address=.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/bench.out" | head -1)
[ -n "$addr" ] && [ -n "$bench_port" ] || { echo "bench-accounts: servers did not start" >&2; cat "$work"/*.out "$work"/*.log >&2; exit 1; }

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
  h2load -t 1 "$@" "${headers[@]}" -d "$body" "$url" >"$work/h2.txt" 2>&1 || true
  local rps mean statuses
  rps=$(sed -n 's/.*finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$work/h2.txt")
  mean=$(awk '/time for request:/ {print $6}' "$work/h2.txt")
  statuses=$(grep -a 'status codes' "$work/h2.txt" | sed 's/status codes: //')
  printf "%-34s c=%-4s m=%-4s %10s req/s   mean %-9s  %s\n" "$name" "$4" "$6" "$rps" "$mean" "$statuses"
}
url_accounts="http://$addr/doorstep.accounts.v1.Accounts/GetAccount"
url_bench="http://127.0.0.1:$bench_port/collection.v1.Accounts/GetAccount"
# Warm up both, then measure each shape.
h2load -t 1 -n 20000 -c "$C" -m "$M" "${headers[@]}" -d "$work/accounts.bin" "$url_accounts" >/dev/null 2>&1 || true
h2load -t 1 -n 20000 -c "$C" -m "$M" "${headers[@]}" -d "$work/bench.bin" "$url_bench" >/dev/null 2>&1 || true
echo "account $account_id (12 instalments; grpc-status checked below by a real call)"
call doorstep.accounts.v1.Accounts/GetAccount "{\"accountId\":\"$account_id\",\"view\":\"ACCOUNT_VIEW_BASIC\"}" | head -c 200; echo
run "accounts GetAccount (SQLite)" "$url_accounts" "$work/accounts.bin" -n "$N" -c "$C" -m "$M"
run "rpc-bench-server GetAccount (mem)" "$url_bench" "$work/bench.bin" -n "$N" -c "$C" -m "$M"
run "accounts GetAccount (SQLite)" "$url_accounts" "$work/accounts.bin" -n "$LAT_N" -c 1 -m 1
run "rpc-bench-server GetAccount (mem)" "$url_bench" "$work/bench.bin" -n "$LAT_N" -c 1 -m 1
