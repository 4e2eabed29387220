#!/usr/bin/env bash
# The accounts service at portfolio scale (issues #4 and #16), every figure from one run:
# ACCOUNTS generated accounts (default 1,000,000; accounts-loadgen), FIELD_ACCOUNTS of them a
# dense field region FIELD_REGION (every account in FIELD, debtors located in one city), then
#   1. EvaluateStages over all of them in batches of BATCH through the real release `accounts`
#      process, twice: a full pass as of yesterday (debtor-local, Asia/Shanghai), then the pass
#      for today (the nightly figure): wall time, accounts evaluated and skipped, accounts/s,
#      the server's peak RSS (VmHWM);
#   2. payments (RecordPayment, Scripts/bench_portfolio.py, stock grpcio) on random accounts
#      listed beforehand: an idle baseline after the yesterday pass, then the same load DURING
#      the today pass: count, errors, mean / p50 / p99 / max latency;
#   3. h2load GetAccount (c16 m32) beside rpc-bench-server's in-memory GetAccount in the same
#      run (the median ratio of GET_PAIRS pairs), and ListVisitCandidates for region 310100 (c4 m1);
#   4. ListVisitCandidates for the dense region at c16 m1: req/s, p50 / p99 from h2load's
#      per-request log;
#   5. PlanDay: a release `scheduling` on these accounts, one agency and CREWS crews in the
#      dense region's city, one PlanDay with candidates timed end to end;
#   and last, each figure beside the issue's target.
#
#   ACCOUNTS=200000 Scripts/bench-stages.sh
#   DATABASE=postgres Scripts/bench-stages.sh
#   SKIP_BUILD=1 ACCOUNTS=50000 FIELD_ACCOUNTS=5000 Scripts/bench-stages.sh   # a quick try
#
#   DATABASE    sqlite (default: <work>/data/accounts.sqlite) or postgres: a private PostgreSQL
#               cluster with default durability (Scripts/bench-postgres.sh; PG_FSYNC=off and
#               PG_OPTIONS there), filled by accounts-loadgen --database-url and served by
#               accounts --database-url (scheduling on a database of its own in it); the
#               cluster is removed afterwards
#   ACCOUNTS, BATCH   accounts generated (1,000,000), accounts per EvaluateStages call (100,000)
#   FIELD_REGION, FIELD_ACCOUNTS   the dense field region (310100) and its accounts, part of
#               ACCOUNTS (20,000; one debtor each); FIELD_ACCOUNTS=0: no dense region, the
#               loadgen's data as before (steps 4 and 5 then use region FIELD_REGION as it is)
#   PAY_CONCURRENCY, PAY_RATE   payment callers (8) and payments/s in all (200; 0 = as fast as
#               they are answered)
#   PAY_COUNT   payments of the idle baseline (2,000)
#   PAY_MAX, PAY_SECONDS   bounds of the payments during the today pass (100,000; 1,800 s):
#               they stop when the pass ends or at either bound
#   GET_N       GetAccount requests per h2load run (100,000)
#   GET_PAIRS   GetAccount runs, each beside an in-memory run (3): the figure is the median ratio
#   CAND_N, CAND_C   dense-region ListVisitCandidates requests (2,000) and connections (16), m1
#   CREWS, CREW_SIZE, CREW_CAPACITY   crews for PlanDay (30), collectors per crew (2, the crew
#               size of the cn-2026 rule pack), visits per collector per day (8)
#   PLAN_CANDIDATES, PLAN_TIME_LIMIT   PlanDay's max_candidates (5,000, the most it takes) and
#               time_limit_seconds (0: the service's default, 2 s)
#   LOAD_TIMEOUT  longest run of any one load step: an h2load run, the payer, PlanDay (900 s)
#   WORK        keep the data directory here (SQLite only; kept afterwards)
#   SKIP_BUILD=1  use the release binaries in .build/release as they are (no swift build)
#   PIN=1       the GetAccount step pinned, as bench-accounts.sh pins it (the figure to report):
#               both servers and the PostgreSQL processes on CPU 0, h2load on CPU 1 (taskset),
#               unpinned again afterwards; every other step runs unpinned
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ACCOUNTS=${ACCOUNTS:-1000000}; BATCH=${BATCH:-100000}; DATABASE=${DATABASE:-sqlite}
FIELD_REGION=${FIELD_REGION:-310100}; FIELD_ACCOUNTS=${FIELD_ACCOUNTS:-20000}
PAY_CONCURRENCY=${PAY_CONCURRENCY:-8}; PAY_RATE=${PAY_RATE:-200}; PAY_COUNT=${PAY_COUNT:-2000}
PAY_MAX=${PAY_MAX:-100000}; PAY_SECONDS=${PAY_SECONDS:-1800}
GET_N=${GET_N:-100000}; GET_PAIRS=${GET_PAIRS:-3}; CAND_N=${CAND_N:-2000}; CAND_C=${CAND_C:-16}
CREWS=${CREWS:-30}; CREW_SIZE=${CREW_SIZE:-2}; CREW_CAPACITY=${CREW_CAPACITY:-8}
PLAN_CANDIDATES=${PLAN_CANDIDATES:-5000}; PLAN_TIME_LIMIT=${PLAN_TIME_LIMIT:-0}; LOAD_TIMEOUT=${LOAD_TIMEOUT:-900}
case $DATABASE in sqlite|postgres) ;; *) echo "bench-stages: DATABASE is sqlite or postgres, not $DATABASE" >&2; exit 2 ;; esac
command -v h2load >/dev/null || { echo "bench-stages: h2load missing (apt-get install nghttp2-client)" >&2; exit 2; }
python3 -c 'import grpc, grpc_tools' 2>/dev/null || { echo "bench-stages: grpcio and grpcio-tools missing (Scripts/install-deps.sh)" >&2; exit 2; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  for product in accounts scheduling doorstep accounts-loadgen rpc-bench-server; do
    flock "${BUILD_LOCK:-/tmp/doorstep-build.lock}" swift build -c release --product "$product" >/dev/null
  done
fi
bin=$root/.build/release
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
source "$root/Scripts/bench-postgres.sh"  # functions only; bench_pg_stop does nothing unless started
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bench_pg_stop
  [ -n "${WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# Where the accounts live: the data directory's SQLite file, or a database of a private cluster.
database_args=()
scheduling_database_args=()
if [ "$DATABASE" = postgres ]; then
  bench_pg_start
  bench_pg_createdb accounts
  bench_pg_createdb scheduling
  database_args=(--database-url "$(bench_pg_url accounts)")
  scheduling_database_args=(--database-url "$(bench_pg_url scheduling)")
fi
field_args=()
[ "$FIELD_ACCOUNTS" -gt 0 ] && field_args=(--field-region "$FIELD_REGION" --field-accounts "$FIELD_ACCOUNTS")
echo "bench-stages: $ACCOUNTS accounts on $DATABASE, batches of $BATCH; dense field region $FIELD_REGION: $FIELD_ACCOUNTS accounts"
/usr/bin/time -f "loadgen: %e s, peak RSS %M KiB" "$bin/accounts-loadgen" --data-dir "$work/data" --accounts "$ACCOUNTS" \
  "${field_args[@]}" "${database_args[@]}"
if [ "$DATABASE" = postgres ]; then
  echo "$(bench_pg_size accounts)	PostgreSQL database accounts"
else
  du -sh "$work/data/accounts.sqlite"
fi
"$bin/doorstep" keygen --key-file "$work/auth.key" >/dev/null
token=$("$bin/doorstep" token --role platform --subject bench --lifetime-seconds 86400 --key-file "$work/auth.key")
export BENCH_TOKEN=$token STUBS_DIR=$work/stubs
# The service's own nightly run is off: the passes below are the figures, and the job would
# otherwise evaluate the loaded accounts at start, before (and beside) them.
"$bin/accounts" --listen 127.0.0.1:0 --metrics-listen off --nightly-evaluation-time off --data-dir "$work/data" --auth-key-file "$work/auth.key" \
  "${database_args[@]}" --log-level warning >"$work/accounts.out" 2>"$work/accounts.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 1 200); do grep -q ' ready ' "$work/accounts.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$work/accounts.out")
[ -n "$addr" ] || { echo "bench-stages: accounts did not start" >&2; cat "$work/accounts.log" >&2; exit 1; }
rss() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
echo "server peak RSS before: $(rss) KiB"

call() { "$bin/doorstep" call "$addr" "$1" "$2" --token "$token" --timeout 3600; }
token_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
# evaluate LABEL [AS_OF_JSON]: one EvaluateStages pass over every account in batches; prints its
# figures and leaves "seconds evaluated" in $work/eval-LABEL.txt.
evaluate() {
  local label=$1 as_of=${2:-} page="" n=0 evaluated=0 skipped=0 out start end
  start=$(date +%s.%N)
  while :; do
    n=$((n + 1))
    out=$(call doorstep.accounts.v1.Accounts/EvaluateStages \
      "{\"requestId\":\"bench-eval-$label-$n\",\"pageSize\":$BATCH,\"pageToken\":\"$page\"${as_of:+,\"asOfDate\":$as_of}}")
    evaluated=$((evaluated + $(echo "$out" | token_field accountsEvaluated | sed 's/^$/0/')))
    skipped=$((skipped + $(echo "$out" | token_field accountsSkipped | sed 's/^$/0/')))
    page=$(echo "$out" | token_field nextPageToken)
    [ -n "$page" ] || break
  done
  end=$(date +%s.%N)
  python3 - "$label" "$start" "$end" "$evaluated" "$skipped" "$n" "$work/eval-$label.txt" <<'PY'
import sys
label, start, end, evaluated, skipped, batches, summary = sys.argv[1:]
t = float(end) - float(start)
print(f"EvaluateStages {label}: {int(evaluated)} accounts evaluated, {int(skipped)} skipped, in {int(batches)} batches, "
      f"{t:.1f} s, {int(evaluated) / t:,.0f} accounts/s")
open(summary, "w").write(f"{t:.3f} {evaluated}\n")
PY
  echo "last batch: $(echo "$out" | head -c 400)"
}
portfolio() { timeout "$LOAD_TIMEOUT" python3 "$root/Scripts/bench_portfolio.py" "$@"; }

# 1a. The full pass as of yesterday, debtor-local (every debtor is in Asia/Shanghai).
yesterday=$(python3 -c 'import datetime, zoneinfo; d = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).date() - datetime.timedelta(days=1); print(f"{{\"year\":{d.year},\"month\":{d.month},\"day\":{d.day}}}")')
evaluate "as-of-yesterday" "$yesterday"
echo "server peak RSS after EvaluateStages as of yesterday: $(rss) KiB"

# 2a. Accounts to pay (listed now, so that neither payment run lists), then the idle baseline.
portfolio sample "$addr" --out "$work/pay-accounts.txt" --regions "$(seq -s ' ' 310100 310149)" --per-region 100
portfolio pay "$addr" --accounts "$work/pay-accounts.txt" --label "idle baseline" --run "idle-$$" \
  --concurrency "$PAY_CONCURRENCY" --rate "$PAY_RATE" --count "$PAY_COUNT" --seconds "$LOAD_TIMEOUT" \
  --summary "$work/pay-idle.txt" || echo "bench-stages: the idle payment run failed"

# 1b + 2b. The pass for today (the nightly figure) with the same payment load running through it.
rm -f "$work/pay.stop" "$work/pay.ready"
timeout "$((PAY_SECONDS + 60))" python3 "$root/Scripts/bench_portfolio.py" pay "$addr" --accounts "$work/pay-accounts.txt" \
  --label "during EvaluateStages today" --run "eval-$$" \
  --concurrency "$PAY_CONCURRENCY" --rate "$PAY_RATE" --count "$PAY_MAX" --seconds "$PAY_SECONDS" \
  --stop-file "$work/pay.stop" --ready-file "$work/pay.ready" --summary "$work/pay-during.txt" >"$work/pay-during.out" 2>&1 &
payer=$!
pids+=("$payer")
for _ in $(seq 1 300); do [ -e "$work/pay.ready" ] && break; sleep 0.1; done
[ -e "$work/pay.ready" ] || echo "bench-stages: the payer did not start within 30 s (see below)"
evaluate "today"
touch "$work/pay.stop"
wait "$payer" || echo "bench-stages: the payment run during EvaluateStages failed"
cat "$work/pay-during.out"
echo "server peak RSS after EvaluateStages today: $(rss) KiB"

# 3. GetAccount beside rpc-bench-server's in-memory GetAccount, and the c4 candidate list.
account_id=$(call doorstep.accounts.v1.Accounts/ListAccounts '{"pageSize":1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accounts"][0]["id"])')
python3 - "$account_id" "$work" "$FIELD_REGION" <<'PY'
import struct, sys
def frame(message): return b"\0" + struct.pack(">I", len(message)) + message
def string(field, text): return bytes([field << 3 | 2, len(text)]) + text.encode()
open(sys.argv[2] + "/get.bin", "wb").write(frame(string(1, sys.argv[1])))
open(sys.argv[2] + "/bench.bin", "wb").write(frame(string(1, "acc-004242")))  # collection.v1 GetAccountRequest
open(sys.argv[2] + "/candidates.bin", "wb").write(frame(string(1, "310100") + b"\x10\x32"))  # region, page_size 50
open(sys.argv[2] + "/field-candidates.bin", "wb").write(frame(string(1, sys.argv[3]) + b"\x10\x32"))
PY
headers=(-H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $token")
# run LABEL URL BODY h2load-args...: one bounded h2load run; prints its summary lines and leaves
# the output in $work/h2.txt. "data/answer" is the mean DATA bytes per answer: a gRPC error
# answers with trailers only, so a figure near 0 means the calls failed.
h2=(h2load)  # the GetAccount step prefixes taskset under PIN=1
run() {
  local label=$1 url=$2 body=$3; shift 3
  timeout "$LOAD_TIMEOUT" "${h2[@]}" -t 1 "$@" "${headers[@]}" -d "$body" "$url" >"$work/h2.txt" 2>&1 || true
  local per_answer
  per_answer=$(python3 - "$work/h2.txt" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", text)
data = re.search(r"traffic: .*?, [^,]* \((\d+)\) data", text)
print(f"{int(data.group(1)) / max(1, int(done.group(1))):.0f}" if done and data else "?")
PY
)
  printf '%-44s %s | %s | data/answer %s B\n' "$label" "$(grep -a 'finished in' "$work/h2.txt" || echo 'did not finish')" \
    "$(grep -a 'status codes' "$work/h2.txt")" "$per_answer"
  grep -a 'time for request' "$work/h2.txt" | head -1
}
rps() { sed -n 's/.*finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$work/h2.txt"; }
"$bin/rpc-bench-server" --port 0 --auth-key-file "$work/auth.key" --log-level notice >"$work/bench.out" 2>&1 &
bench_pid=$!
pids+=("$bench_pid")
for _ in $(seq 1 100); do grep -q 'serving gRPC' "$work/bench.out" 2>/dev/null && break; sleep 0.1; done
bench_port=$(sed -n 's/.*address=.*127.0.0.1:\([0-9]*\).*/\1/p' "$work/bench.out" | head -1)
[ -n "$bench_port" ] || { echo "bench-stages: rpc-bench-server did not start" >&2; cat "$work/bench.out" >&2; exit 1; }
url_get="http://$addr/doorstep.accounts.v1.Accounts/GetAccount"
url_mem="http://127.0.0.1:$bench_port/collection.v1.Accounts/GetAccount"
# PIN=1: every thread of both servers and of the PostgreSQL processes (new backends inherit it
# from the postmaster) on CPU 0, h2load on CPU 1, for this step only.
pin_servers() { # CPU list
  local p
  for p in "$pid" "$bench_pid" $( [ "$DATABASE" = postgres ] && pgrep -u postgres -x postgres || true ); do
    taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true
  done
}
if [ -n "${PIN:-}" ]; then
  command -v taskset >/dev/null || { echo "bench-stages: PIN=1 needs taskset (util-linux)" >&2; exit 2; }
  pin_servers 0
  h2=(taskset -c 1 h2load)
fi
# Warm both up, then measure each once, the same shape.
echo "GetAccount step: warm-up at $(date -u +%T.%3N) UTC"
timeout "$LOAD_TIMEOUT" "${h2[@]}" -t 1 -n 20000 -c 16 -m 32 "${headers[@]}" -d "$work/get.bin" "$url_get" >/dev/null 2>&1 || true
timeout "$LOAD_TIMEOUT" "${h2[@]}" -t 1 -n 20000 -c 16 -m 32 "${headers[@]}" -d "$work/bench.bin" "$url_mem" >/dev/null 2>&1 || true
echo "GetAccount step: measured from $(date -u +%T.%3N) UTC"
# GET_PAIRS pairs, each the service then the in-memory server: the machine's speed drifts
# between runs (the in-memory baseline alone moved 46,000–69,000 req/s between consecutive runs
# on a noisy day), so the figure is the median of the pairs' ratios.
ratios=()
for pair in $(seq 1 "$GET_PAIRS"); do
  run "GetAccount (c16 m32), pair $pair" "$url_get" "$work/get.bin" -n "$GET_N" -c 16 -m 32
  get_rps=$(rps)
  run "rpc-bench-server GetAccount, in memory (c16 m32), pair $pair" "$url_mem" "$work/bench.bin" -n "$GET_N" -c 16 -m 32
  mem_rps=$(rps)
  ratios+=("$(python3 -c 'import sys; a, b = sys.argv[1:]; print(f"{float(a) / float(b):.3f}" if a and b else "?")' "$get_rps" "$mem_rps")")
done
[ -z "${PIN:-}" ] || pin_servers "0-$(($(nproc) - 1))"
h2=(h2load)
echo "GetAccount step: $([ -n "${PIN:-}" ] && echo "pinned: servers and PostgreSQL on CPU 0, h2load on CPU 1" || echo "unpinned")"
kill "$bench_pid" 2>/dev/null || true
get_ratio=$(python3 -c 'import statistics, sys; r = [float(x) for x in sys.argv[1:] if x != "?"]; print(f"{statistics.median(r):.3f}" if len(r) == len(sys.argv) - 1 else "?")' "${ratios[@]}")
echo "GetAccount on $DATABASE / in memory: $get_ratio (median of the pairs: ${ratios[*]})"
run "ListVisitCandidates 310100 (c4 m1)" "http://$addr/doorstep.accounts.v1.Accounts/ListVisitCandidates" "$work/candidates.bin" -n 200 -c 4 -m 1

# 4. The dense region's candidate list at c16, p50 / p99 from h2load's per-request log.
# One call first, read back: the load below measures answers like this one.
call doorstep.accounts.v1.Accounts/ListVisitCandidates "{\"regionCode\":\"$FIELD_REGION\",\"pageSize\":50}" >"$work/first-page.json"
python3 - "$FIELD_REGION" "$work/first-page.json" <<'PY'
import json, sys
page = json.load(open(sys.argv[2]))
candidates = page.get("candidates", [])
more = "more pages" if page.get("nextPageToken") else "no more pages"
if candidates:
    top = candidates[0]
    print(f"ListVisitCandidates {sys.argv[1]}, first page: {len(candidates)} candidates, {more}; top {top['accountId']}: "
          f"DPD {top.get('daysPastDue')}, expected recovery {top.get('expectedRecovery', {}).get('amountMinor')} minor units")
else:
    print(f"ListVisitCandidates {sys.argv[1]}, first page: no candidates")
PY
rm -f "$work/candidates.log"
run "ListVisitCandidates $FIELD_REGION (c$CAND_C m1)" "http://$addr/doorstep.accounts.v1.Accounts/ListVisitCandidates" \
  "$work/field-candidates.bin" -n "$CAND_N" -c "$CAND_C" -m 1 --log-file "$work/candidates.log"
cand_rps=$(rps)
if [ -s "$work/candidates.log" ]; then
  echo "ListVisitCandidates $FIELD_REGION (c$CAND_C m1) latency: $(python3 "$root/Scripts/bench_portfolio.py" h2log "$work/candidates.log" --summary "$work/cand.txt")"
fi
echo "server peak RSS after the h2load runs: $(rss) KiB"

# 5. PlanDay: scheduling on these accounts, one agency and CREWS crews, one plan timed.
mkdir -p "$work/scheduling"
"$bin/scheduling" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/scheduling" --auth-key-file "$work/auth.key" \
  --accounts-addr "$addr" "${scheduling_database_args[@]}" --log-level warning >"$work/scheduling.out" 2>"$work/scheduling.log" &
pids+=($!)
for _ in $(seq 1 200); do grep -q ' ready ' "$work/scheduling.out" 2>/dev/null && break; sleep 0.1; done
scheduling=$(sed -n 's/.* grpc=\([^ ]*\).*/\1/p' "$work/scheduling.out")
if [ -z "$scheduling" ]; then
  echo "bench-stages: scheduling did not start"; sed 's/^/scheduling log: /' "$work/scheduling.log" | head -20
else
  portfolio plan-day "$scheduling" --region "$FIELD_REGION" --crews "$CREWS" --crew-size "$CREW_SIZE" \
    --capacity "$CREW_CAPACITY" --max-candidates "$PLAN_CANDIDATES" --time-limit "$PLAN_TIME_LIMIT" \
    --timeout "$LOAD_TIMEOUT" --run "$$" --summary "$work/plan.txt" || echo "bench-stages: PlanDay failed"
fi
echo "server peak RSS at the end: $(rss) KiB"

# The issue's targets beside this run's figures.
python3 - "$work" "$DATABASE" "$FIELD_REGION" "${cand_rps:-}" "$get_ratio" "$CAND_C" <<'PY'
import os, sys
work, database, region, cand_rps, get_ratio, c = sys.argv[1:]
def read(name):
    path = os.path.join(work, name)
    return open(path).read().split() if os.path.exists(path) else None
def verdict(ok): return "met" if ok else "MISSED"
print(f"targets ({database}):")
today = read("eval-today.txt")
if today:
    note = verdict(float(today[0]) < 30) if database == "sqlite" else "the 30 s target is SQLite's"
    print(f"  EvaluateStages today: {float(today[0]):.1f} s for {today[1]} accounts (< 30 s on SQLite): {note}")
for label, name in (("idle", "pay-idle.txt"), ("during EvaluateStages today", "pay-during.txt")):
    pay = read(name)
    if pay:
        ok = pay[2] != "nan" and float(pay[2]) < 50 and int(pay[1]) == 0
        print(f"  payments {label}: p99 {float(pay[2]):.1f} ms, {pay[0]} recorded, {pay[1]} failed (p99 < 50 ms, none failed): {verdict(ok)}")
cand = read("cand.txt")
if cand and cand_rps:
    ok = float(cand_rps) >= 500 and float(cand[1]) < 50
    print(f"  ListVisitCandidates {region} c{c}: {float(cand_rps):.0f} req/s, p99 {float(cand[1]):.1f} ms "
          f"(>= 500 req/s, p99 < 50 ms): {verdict(ok)}")
try:
    get_verdict = verdict(float(get_ratio) >= 0.5)
except ValueError:
    get_verdict = "not measured"
print(f"  GetAccount {database} / in memory (c16 m32): {get_ratio} (>= 0.5): {get_verdict}")
plan = read("plan.txt")
if plan:
    print(f"  PlanDay {region}: {float(plan[0]):.2f} s, {plan[1]} visits planned of {plan[2]} candidates considered "
          f"(< 10 s): {verdict(float(plan[0]) < 10)}")
PY
# Anything the services logged (warnings and worse) during the run.
[ -s "$work/accounts.log" ] && sed 's/^/accounts log: /' "$work/accounts.log" | head -20
[ -s "$work/scheduling.log" ] && sed 's/^/scheduling log: /' "$work/scheduling.log" | head -20
true
