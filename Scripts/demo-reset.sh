#!/usr/bin/env bash
# Puts the demo clock back to the wall clock: Scripts/demo-walk.sh moves the services' test
# clock (./data/clock-offset, milliseconds added to the wall clock) two days on per walk so
# that a crew can check in inside the booked window; this writes 0 to it. The services
# re-read the file within 50 ms. What the walks did (appointments, visits, promises) stays:
# the visited accounts remain out of the candidates until their promises and the visit
# cool-down have passed (docs/DOMAIN.md "Visit candidates and day plans").
#
# Environment: DOORSTEP_CLOCK_FILE (./data/clock-offset, as Scripts/run.sh starts the demo).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clock=${DOORSTEP_CLOCK_FILE:-$root/data/clock-offset}
[ -f "$clock" ] || { echo "demo-reset: no clock file $clock (start the system with DOORSTEP_DEMO=1 Scripts/run.sh)" >&2; exit 2; }
offset=$(cat "$clock")
case "$offset" in
  ''|*[!0-9-]*) echo "demo-reset: $clock holds '$offset', not a number of milliseconds; setting it to 0" >&2 ;;
esac
echo 0 > "$clock.tmp" && mv "$clock.tmp" "$clock"
sleep 0.2
echo "demo-reset: the demo clock is back on the wall clock (it was ${offset:-0} ms ahead)"
