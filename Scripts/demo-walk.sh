#!/usr/bin/env bash
# Walks one field visit through the running demo system with the `doorstep` CLI only, the
# way an operator and a crew would: plan a day two days ahead with visit candidates, book the
# first candidate stop for the crew the plan proposes, wait for the customer notice, confirm,
# move the demo clock into the visit window, check in both collectors at the door, record a
# promise to pay, check out with the recording's reference, and show the promise on the
# account. Every call and its answer are printed.
#
# It can run any number of times: each walk uses request ids of its own and takes the first
# candidate stop whose account has never been visited (an account visited, or whose debtor
# promised to pay, is no visit candidate for a while anyway: docs/DOMAIN.md "Visit candidates
# and day plans"). When no such account is left it says so and exits 3. The demo clock stays
# where the walk moved it (two days on per walk); Scripts/demo-reset.sh puts it back.
#
# Needs the services in dev mode with the test clock, as `DOORSTEP_DEMO=1 Scripts/run.sh`
# starts them. Environment (defaults are run.sh's): DOORSTEP_ACCOUNTS / DOORSTEP_SCHEDULING /
# DOORSTEP_VISITS (127.0.0.1:50051/50052/50053), DOORSTEP_KEY_FILE (./data/auth.key),
# DOORSTEP_CLOCK_FILE (./data/clock-offset), DOORSTEP_BIN (swift build --show-bin-path),
# DOORSTEP_REGIONS (the demo city's districts: 310115 310104 310101).
# Exit status: 0 walked; 1 a call failed or answered unexpectedly; 2 not set up; 3 no
# account left to walk.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DOORSTEP_BIN:-$(cd "$root" && swift build --show-bin-path)}
accounts=${DOORSTEP_ACCOUNTS:-127.0.0.1:50051}
scheduling=${DOORSTEP_SCHEDULING:-127.0.0.1:50052}
visits=${DOORSTEP_VISITS:-127.0.0.1:50053}
key=${DOORSTEP_KEY_FILE:-$root/data/auth.key}
clock=${DOORSTEP_CLOCK_FILE:-$root/data/clock-offset}
regions=${DOORSTEP_REGIONS:-310115 310104 310101}
[ -f "$clock" ] || { echo "walk: no clock file $clock (start the system with DOORSTEP_DEMO=1 Scripts/run.sh)" >&2; exit 2; }

# This walk's own request ids: a walk never replays another walk's requests.
run="$(date +%s)-$$"

token() { "$bin/doorstep" token --key-file "$key" "$@"; }
call() { # address method json token
  echo "walk: → $2 $3" >&2
  "$bin/doorstep" call "$1" "$2" "$3" --token "$4" < /dev/null
}
# field EXPR: evaluates a Python expression over the JSON on stdin (as `d`). An empty or
# unexpected answer (the call before it failed and said why) fails with one line, never a
# traceback.
field() {
  python3 -c '
import json, sys
raw = sys.stdin.read()
if not raw.strip():
    sys.exit("walk: no answer to read (the call above failed)")
try:
    d = json.loads(raw)
    print(eval(sys.argv[1]))
except Exception as error:
    sys.exit(f"walk: unexpected answer ({type(error).__name__}: {error}): {raw[:300]}")
' "$1"
}
now_ms() { echo $(( $(date +%s%3N) + $(cat "$clock") )); }

platform=$(token --role platform)

# 1. A plan for two days ahead (Asia/Shanghai) with candidates; the first candidate stop, in
#    the first district that has one, whose account has never been visited.
day=$(python3 -c 'import sys, datetime; t = datetime.datetime.fromtimestamp(int(sys.argv[1]) / 1000 + 2 * 86400, datetime.timezone(datetime.timedelta(hours=8))); print(f"{{\"year\":{t.year},\"month\":{t.month},\"day\":{t.day}}}")' "$(now_ms)")
stop=""
deferred=0
for region in $regions; do
  plan=$(call "$scheduling" doorstep.scheduling.v1.Scheduling/PlanDay \
    "{\"regionCode\":\"$region\",\"date\":$day,\"options\":{\"fillWithCandidates\":true}}" "$platform")
  held=$(echo "$plan" | field 'sum(1 for u in d.get("unassigned", []) if u.get("reason") == "UNASSIGNED_REASON_DEFERRED")')
  deferred=$(( deferred + held ))
  stops=$(echo "$plan" | field '
"\n".join(json.dumps({"crew": r["crewCollectorIds"], "agency": r["agencyId"], **s})
          for r in d.get("routes", []) for s in r.get("stops", []) if "accountId" in s)')
  while IFS= read -r candidate; do
    [ -n "$candidate" ] || continue
    id=$(echo "$candidate" | field 'd["accountId"]')
    earlier=$(call "$visits" doorstep.visits.v1.Visits/ListVisits "{\"accountId\":\"$id\",\"pageSize\":1}" "$platform" |
      field '" ".join(v["id"] for v in d.get("visits", []))')
    if [ -n "$earlier" ]; then
      echo "walk: skipping $id in $region: visited before ($earlier)"
      continue
    fi
    stop=$candidate
    break
  done <<< "$stops"
  [ -n "$stop" ] && break
done
if [ -z "$stop" ]; then
  echo "walk: no account is left to walk: the day plans of $regions have no candidate stop that was never visited" \
       "($deferred accounts deferred: a pending promise, a kept plan or a visit within the cool-down)." \
       "Seed more debtors (DOORSTEP_DEMO=1 with a fresh ./data) to walk again." >&2
  exit 3
fi
account=$(echo "$stop" | field 'd["accountId"]')
agency=$(echo "$stop" | field 'd["agency"]')
crew=$(echo "$stop" | field 'json.dumps(d["crew"])')
start=$(echo "$stop" | field 'd["windowStartMs"]')
end=$(echo "$stop" | field 'd["windowEndMs"]')
location=$(echo "$stop" | field 'json.dumps(d["location"])')
echo "walk: planned $account in $region for crew $crew, window $start-$end"

# 2. Book the suggested window; the notice goes out (dev log sink) and the appointment
#    becomes NOTIFIED; the debtor confirms by phone.
appointment=$(call "$scheduling" doorstep.scheduling.v1.Scheduling/BookAppointment \
  "{\"requestId\":\"walk-$run-book-$account\",\"accountId\":\"$account\",\"crewCollectorIds\":$crew,\"windowStartMs\":\"$start\",\"windowEndMs\":\"$end\",\"purpose\":\"VISIT_PURPOSE_DISCUSS_REPAYMENT\"}" \
  "$platform" | field 'd["id"]')
echo "walk: booked $appointment"
for _ in $(seq 1 100); do
  state=$(call "$scheduling" doorstep.scheduling.v1.Scheduling/GetAppointment "{\"appointmentId\":\"$appointment\"}" "$platform" 2>/dev/null | field 'd["state"]')
  [ "$state" = APPOINTMENT_STATE_NOTIFIED ] && break
  sleep 0.1
done
[ "$state" = APPOINTMENT_STATE_NOTIFIED ] || { echo "walk: the notice was not delivered (state $state)" >&2; exit 1; }
call "$scheduling" doorstep.scheduling.v1.Scheduling/ConfirmAppointment \
  "{\"requestId\":\"walk-$run-confirm-$appointment\",\"appointmentId\":\"$appointment\",\"confirmationChannel\":\"CONTACT_CHANNEL_PHONE\"}" \
  "$platform" | field 'd["state"]'

# 3. Two days pass: the demo clock moves to ten minutes into the window.
echo $(( start + 600000 - $(date +%s%3N) )) > "$clock"
sleep 0.3
echo "walk: the clock is now $(now_ms)"

# 4. Both collectors check in at the door.
visit=""
for member in $(echo "$crew" | field '" ".join(d)'); do
  collector=$(token --role collector --agency "$agency" --collector "$member")
  visit=$(call "$visits" doorstep.visits.v1.Visits/CheckIn \
    "{\"requestId\":\"walk-in-${member: -12}-${appointment: -12}\",\"appointmentId\":\"$appointment\",\"collectorId\":\"$member\",\"location\":$location,\"locationAccuracyMeters\":10,\"idShown\":true,\"consentToEnter\":true}" \
    "$collector" | field 'd["id"]')
done
echo "walk: checked in, visit $visit"

# 5. A promise of 100.00 CNY in five days, then check-out with the recording's reference.
lead=$(echo "$crew" | field 'd[0]')
collector=$(token --role collector --agency "$agency" --collector "$lead")
promised=$(python3 -c 'import sys, datetime; t = datetime.datetime.fromtimestamp(int(sys.argv[1]) / 1000 + 5 * 86400, datetime.timezone(datetime.timedelta(hours=8))); print(f"{{\"year\":{t.year},\"month\":{t.month},\"day\":{t.day}}}")' "$start")
call "$visits" doorstep.visits.v1.Visits/RecordOutcome \
  "{\"requestId\":\"walk-outcome-$visit\",\"visitId\":\"$visit\",\"collectorId\":\"$lead\",\"code\":\"VISIT_OUTCOME_CODE_PROMISE_TO_PAY\",\"willingness\":\"WILLINGNESS_WILLING\",\"ability\":\"ABILITY_PARTIAL\",\"notes\":\"债务人承诺五日内先还一部分\",\"promise\":{\"amount\":{\"amountMinor\":\"10000\",\"currencyCode\":\"CNY\"},\"promisedDate\":$promised}}" \
  "$collector" | field 'd["state"]'
digest=$(python3 -c 'import base64, hashlib; print(base64.b64encode(hashlib.sha256(b"walk recording").digest()).decode())')
call "$visits" doorstep.visits.v1.Visits/CheckOut \
  "{\"requestId\":\"walk-checkout-$visit\",\"visitId\":\"$visit\",\"collectorId\":\"$lead\",\"evidence\":{\"recordingId\":\"rec-walk-1\",\"evidenceSha256\":\"$digest\"}}" \
  "$collector" | field 'd["state"]'

# 6. The promise reaches accounts through the visits outbox.
for _ in $(seq 1 100); do
  promise=$(call "$accounts" doorstep.accounts.v1.Accounts/GetAccount "{\"accountId\":\"$account\"}" "$platform" 2>/dev/null |
    field "next((p['id'] + ' ' + p['status'] for p in d.get('promises', []) if p.get('sourceVisitId') == '$visit'), '')")
  [ -n "$promise" ] && break
  sleep 0.1
done
[ -n "$promise" ] || { echo "walk: the promise did not reach accounts" >&2; exit 1; }
echo "walk: accounts holds promise $promise from visit $visit"
echo "walk: done; the demo clock is $(( $(cat "$clock") / 3600000 )) h ahead of the wall clock (Scripts/demo-reset.sh puts it back)"
