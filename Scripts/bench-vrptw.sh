#!/usr/bin/env bash
# The day planner's solver on generated city-scale instances (issue #5): 2,000 visits with 100
# vehicles and 10,000 visits with 400 vehicles, random points with time
# windows, Solomon text format (travel time = distance: a 30 km square at 1 m/s, windows of 1-4 h
# in a 28 h day, 10 min service); `doorstep solve-vrptw` (release) at TIME_LIMITS seconds.
# Prints the solver's summary line per run and the wall time (one core's worth of work: the
# solver is single-threaded).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
TIME_LIMITS=${TIME_LIMITS:-"1 10"}
swift build -c release --product doorstep >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
generate() { # visits vehicles file
  python3 - "$1" "$2" "$3" <<'PY'
import random, sys
n, vehicles, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(n)
capacity = max(10, (n // vehicles) * 2)
rows = [f"{n} {capacity} {vehicles}", "0 15000 15000 0 0 100000 0"]
for i in range(1, n + 1):
    x, y = rng.randrange(0, 30000), rng.randrange(0, 30000)
    # Windows open no earlier than the drive from the depot, so every visit is servable alone.
    ready = int(((x - 15000) ** 2 + (y - 15000) ** 2) ** 0.5) + rng.randrange(0, 50000)
    rows.append(f"{i} {x} {y} 1 {ready} {ready + rng.randrange(3600, 14400)} 600")
open(path, "w").write("\n".join(rows) + "\n")
PY
}
for spec in "2000 100" "10000 400"; do
  set -- $spec
  file="$work/city-$1.txt"
  generate "$1" "$2" "$file"
  for limit in $TIME_LIMITS; do
    start=$(date +%s.%N)
    last=$(.build/release/doorstep solve-vrptw "$file" --time-limit "$limit" | tail -1)
    end=$(date +%s.%N)
    python3 -c "import sys; print(f'{sys.argv[1]} visits, {sys.argv[2]} vehicles, limit {sys.argv[3]} s: {sys.argv[4]} (wall {float(sys.argv[6])-float(sys.argv[5]):.1f} s)')" "$1" "$2" "$limit" "$last" "$start" "$end"
  done
done
