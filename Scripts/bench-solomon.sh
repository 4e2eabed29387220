#!/usr/bin/env bash
# The day planner's VRPTW solver against PyVRP (pip `pyvrp`) on the Solomon 100-customer
# instances in Scripts/solomon/instances (C101 R101 RC101 C201 R201 RC201, classic format),
# at an equal time limit of TIME_LIMIT seconds (default 10) per run, for each seed in SEEDS
# (default "1"). Both minimise total distance with the instance's fleet (third header field
# after conversion = the classic file's vehicle NUMBER) and capacity. Runs are sequential,
# one core per solver (both are single-threaded). Prints per-run lines on stderr and a Markdown
# table on stdout: each solver's distance (unrounded Euclidean, recomputed from its routes by
# Scripts/solomon/compare.py, which also re-checks feasibility), vehicles, feasibility, the
# ratio ours/PyVRP (< 1: ours shorter), and the published distance-minimal optimum.
#
# Binary: DOORSTEP (default .build/release/doorstep) is used as it is when it exists; it is
# built (`swift build -c release --product doorstep`) only when missing, or when BUILD=1 or
# `--build` is given. PyVRP (PYVRP_VERSION, default 0.14.1) is pip-installed when missing.
#
#   Scripts/bench-solomon.sh                      # 10 s, seed 1, existing binary
#   TIME_LIMIT=2 SEEDS="1 2 3" Scripts/bench-solomon.sh
#   Scripts/bench-solomon.sh --build              # rebuild the binary first
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
TIME_LIMIT=${TIME_LIMIT:-10}
SEEDS=${SEEDS:-1}
BUILD=${BUILD:-0}
PYVRP_VERSION=${PYVRP_VERSION:-0.14.1}
DOORSTEP=${DOORSTEP:-$root/.build/release/doorstep}
for arg in "$@"; do
  case "$arg" in
    --build) BUILD=1 ;;
    *) echo "bench-solomon: unknown argument $arg (only --build)" >&2; exit 2 ;;
  esac
done
if [ "$BUILD" = 1 ] || [ ! -x "$DOORSTEP" ]; then
  swift build -c release --product doorstep >/dev/null
  DOORSTEP=$root/.build/release/doorstep
fi
python3 -c 'import pyvrp' 2>/dev/null || python3 -m pip install --quiet "pyvrp==$PYVRP_VERSION"
instances=$root/Scripts/solomon/instances
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Classic Solomon files -> the simplified `N CAPACITY VEHICLES` format (Scripts/solomon/README.md),
# fleet limited to the instance's vehicle count.
for name in C101 R101 RC101 C201 R201 RC201; do
  [ -f "$instances/$name.txt" ] || { echo "bench-solomon: $instances/$name.txt missing" >&2; exit 2; }
  python3 - "$instances/$name.txt" >"$work/$name.txt" <<'PY'
import sys
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
vehicles, capacity = next(map(int, l) for l in lines if len(l) == 2 and all(x.isdigit() for x in l))
rows = [l for l in lines if len(l) == 7 and all(x.replace('.', '').isdigit() for x in l)]
print(len(rows) - 1, capacity, vehicles)
for r in rows:
    print(*r)
PY
done
# shellcheck disable=SC2086 # SEEDS is a list
python3 "$root/Scripts/solomon/compare.py" "$work" "$TIME_LIMIT" "$DOORSTEP" $SEEDS
