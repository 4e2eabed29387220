#!/usr/bin/env python3
"""Doorstep's VRPTW solver against PyVRP on Solomon instances, at equal time limits.

Usage:
    compare.py INSTANCES_DIR TIME_LIMIT DOORSTEP_BINARY [SEED ...]

INSTANCES_DIR holds `*.txt` instances, either classic Solomon files (`C101` / `VEHICLE` /
`NUMBER CAPACITY` / `CUSTOMER` blocks) or the simplified format `doorstep solve-vrptw`
reads (`N CAPACITY VEHICLES`, then `id x y demand ready due service`). Classic files are
converted to the simplified format in a temporary directory, with the fleet limited to the
instance's vehicle count. Both solvers get the same data and the same objective: minimise
total distance (no cost per vehicle) with at most VEHICLES vehicles of capacity CAPACITY,
each leaving the depot no earlier than its ready time and back by its due time; service
starts within [ready, due] (Solomon convention: waiting allowed, lateness not).

Per instance and seed (default seed 1), sequentially, one core each:
  * ours:  `DOORSTEP_BINARY solve-vrptw FILE --time-limit TIME_LIMIT --seed SEED`;
  * PyVRP: `pyvrp.Model` ... `solve(MaxRuntime(TIME_LIMIT), seed=SEED)`. PyVRP needs integer
    data, so coordinates' Euclidean distances are scaled by SCALE (1000) and rounded for the
    objective; travel durations are scaled and rounded UP, and times/service scaled exactly
    (they are integers in Solomon files), so any route PyVRP finds feasible is feasible in
    exact Double arithmetic too.
Both solvers' routes are then re-checked here in Double arithmetic (every customer exactly
once, capacity, time windows, depot return, fleet size) and their total distance recomputed
as the sum of unrounded Euclidean arc lengths, so the two columns are directly comparable.

Prints one progress line per run on stderr and a Markdown table on stdout. With several
seeds the distance is the mean over seeds (best in parentheses), the ratio compares the
means, and "feasible" counts the runs whose solution passed the check.
"""

import math
import os
import re
import subprocess
import sys
import tempfile
import time

SCALE = 1000
EPS = 1e-6

# Best known distance-minimal solutions (vehicles, distance), proven optimal, from
# M. Solomon's VRPTW pages (c1c2solu.htm, r1r2solu.htm, rc12solu.htm; archived copies),
# as collected in mrpritt/attention-learn-to-route instances/solomon/bkv.csv.
# These use arc lengths truncated to one decimal, so they sit slightly BELOW the same
# routes measured with unrounded Euclidean distances (the convention used here); they are
# a reference, not an exact target. (Published "best known" tables that minimise vehicles
# first, e.g. R201 4 vehicles 1252.37, are a different objective.)
BEST_KNOWN = {
    "C101": (10, 827.3),
    "R101": (20, 1637.7),
    "RC101": (15, 1619.8),
    "C201": (3, 589.1),
    "R201": (8, 1143.2),
    "RC201": (9, 1261.8),
}


def is_number(field):
    return re.fullmatch(r"-?\d+(\.\d+)?", field) is not None


def read_instance(path):
    """Returns (capacity, vehicles, rows) with rows = [[x, y, demand, ready, due, service]],
    row 0 the depot, from a classic Solomon file or the simplified format."""
    lines = [line.split() for line in open(path) if line.strip()]
    if len(lines[0]) in (2, 3) and all(is_number(f) for f in lines[0]):  # simplified
        header = lines[0]
        capacity = int(float(header[1]))
        vehicles = int(float(header[2])) if len(header) == 3 else None
        body = lines[1:]
    else:  # classic
        vehicles, capacity = next(
            (int(l[0]), int(l[1])) for l in lines if len(l) == 2 and all(f.isdigit() for f in l))
        body = [l for l in lines if len(l) == 7 and all(is_number(f) for f in l)]
    rows = []
    for index, fields in enumerate(body):
        if len(fields) != 7 or int(float(fields[0])) != index:
            raise SystemExit(f"{path}: unexpected node row {fields}")
        _, x, y, demand, ready, due, service = (float(f) for f in fields)
        rows.append([x, y, int(demand), ready, due, service])
    if vehicles is None:
        vehicles = len(rows) - 1
    return capacity, vehicles, rows


def write_simplified(path, capacity, vehicles, rows):
    with open(path, "w") as out:
        out.write(f"{len(rows) - 1} {capacity} {vehicles}\n")
        for i, (x, y, demand, ready, due, service) in enumerate(rows):
            out.write(f"{i} {x:g} {y:g} {demand} {ready:g} {due:g} {service:g}\n")


def dist(rows, i, j):
    return math.hypot(rows[i][0] - rows[j][0], rows[i][1] - rows[j][1])


def check(rows, capacity, vehicles, routes):
    """Double-arithmetic check. Returns (total distance, list of violations)."""
    problems = []
    seen = {}
    total = 0.0
    routes = [r for r in routes if r]
    if len(routes) > vehicles:
        problems.append(f"{len(routes)} routes > {vehicles} vehicles")
    depot_ready, depot_due = rows[0][3], rows[0][4]
    for k, route in enumerate(routes):
        load, t, prev = 0, depot_ready, 0
        for c in route:
            if not 1 <= c < len(rows):
                problems.append(f"route {k}: bad node {c}")
                continue
            seen[c] = seen.get(c, 0) + 1
            load += rows[c][2]
            leg = dist(rows, prev, c)
            total += leg
            arrival = t + leg
            if arrival > rows[c][4] + EPS:
                problems.append(f"route {k}: late at {c} ({arrival:.4f} > {rows[c][4]:g})")
            t = max(arrival, rows[c][3]) + rows[c][5]
            prev = c
        leg = dist(rows, prev, 0)
        total += leg
        if t + leg > depot_due + EPS:
            problems.append(f"route {k}: back at depot {t + leg:.4f} > {depot_due:g}")
        if load > capacity:
            problems.append(f"route {k}: load {load} > {capacity}")
    for c in range(1, len(rows)):
        if seen.get(c, 0) != 1:
            problems.append(f"customer {c} served {seen.get(c, 0)} times")
    return total, problems


def run_ours(binary, path, time_limit, seed):
    out = subprocess.run(
        [binary, "solve-vrptw", path, "--time-limit", str(time_limit), "--seed", str(seed)],
        check=True, capture_output=True, text=True).stdout
    routes = []
    for line in out.splitlines():
        m = re.match(r"route vehicle=\d+ distance=[-\d.]+:(.*)$", line)
        if m:
            routes.append([int(f) for f in m.group(1).split()])
    summary = out.strip().splitlines()[-1]
    m = re.fullmatch(r"distance=([-\d.]+) vehicles=(\d+) feasible=(true|false)", summary)
    if not m:
        raise SystemExit(f"unexpected last line from doorstep: {summary!r}")
    return routes, float(m.group(1)), m.group(3) == "true"


def run_pyvrp(rows, capacity, vehicles, time_limit, seed):
    from pyvrp import Model
    from pyvrp.stop import MaxRuntime

    model = Model()
    locations = [model.add_location(x=x * SCALE, y=y * SCALE) for x, y, *_ in rows]
    depot = rows[0]
    model.add_depot(locations[0], tw_early=round(depot[3] * SCALE), tw_late=round(depot[4] * SCALE))
    model.add_vehicle_type(
        num_available=vehicles, capacity=capacity,
        tw_early=round(depot[3] * SCALE), tw_late=round(depot[4] * SCALE))
    for i in range(1, len(rows)):
        _, _, demand, ready, due, service = rows[i]
        model.add_client(
            locations[i], delivery=demand, service_duration=round(service * SCALE),
            tw_early=round(ready * SCALE), tw_late=round(due * SCALE), name=str(i))
    for i in range(len(rows)):
        for j in range(len(rows)):
            d = dist(rows, i, j) * SCALE
            model.add_edge(locations[i], locations[j], distance=round(d), duration=math.ceil(d - 1e-9))
    result = model.solve(stop=MaxRuntime(time_limit), seed=seed, collect_stats=False, display=False)
    clients = model.data().clients()
    routes = [[int(clients[a.idx].name) for a in route if a.is_client()] for route in result.best.routes()]
    scaled = result.best.distance() / SCALE
    return routes, scaled, result.is_feasible()


def fmt_distance(values):
    mean = sum(values) / len(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ({min(values):.2f})"


def fmt_range(values):
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    directory, time_limit, binary = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    seeds = [int(s) for s in sys.argv[4:]] or [1]
    order = {"C101": 0, "R101": 1, "RC101": 2, "C201": 3, "R201": 4, "RC201": 5}
    files = sorted((f for f in os.listdir(directory) if f.endswith(".txt")),
                   key=lambda f: (order.get(f[:-4].upper(), 99), f))
    if not files:
        raise SystemExit(f"no *.txt instances in {directory}")
    table = []
    with tempfile.TemporaryDirectory() as work:
        for name in files:
            instance = name[:-4].upper()
            capacity, vehicles, rows = read_instance(os.path.join(directory, name))
            converted = os.path.join(work, name)
            write_simplified(converted, capacity, vehicles, rows)
            results = {"ours": [], "pyvrp": []}
            for seed in seeds:
                for solver in ("ours", "pyvrp"):
                    start = time.monotonic()
                    if solver == "ours":
                        routes, reported, claimed = run_ours(binary, converted, time_limit, seed)
                    else:
                        routes, reported, claimed = run_pyvrp(rows, capacity, vehicles, time_limit, seed)
                    wall = time.monotonic() - start
                    total, problems = check(rows, capacity, vehicles, routes)
                    feasible = claimed and not problems
                    used = sum(1 for r in routes if r)
                    results[solver].append((total, used, feasible))
                    print(f"{instance} seed {seed} {solver}: distance={total:.2f} (solver said {reported:.2f})"
                          f" vehicles={used} feasible={feasible} wall={wall:.1f}s"
                          + (f" PROBLEMS: {'; '.join(problems[:3])}" if problems else ""),
                          file=sys.stderr, flush=True)
            table.append((instance, vehicles, results))

    n = len(seeds)
    print(f"Time limit {time_limit:g} s per run, seeds {' '.join(map(str, seeds))}; distances are unrounded"
          " Euclidean, recomputed from each solver's routes" + (", mean (best) over seeds" if n > 1 else "") + ".")
    print()
    print("| instance | fleet | ours distance | ours veh | ours feasible | PyVRP distance | PyVRP veh"
          " | PyVRP feasible | ours/PyVRP | best known (veh)¹ |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for instance, vehicles, results in table:
        cells = [instance, str(vehicles)]
        means = {}
        for solver in ("ours", "pyvrp"):
            runs = results[solver]
            distances = [r[0] for r in runs]
            means[solver] = sum(distances) / len(distances)
            cells += [fmt_distance(distances), fmt_range([r[1] for r in runs]),
                      f"{sum(r[2] for r in runs)}/{n}" if n > 1 else str(runs[0][2]).lower()]
        cells.append(f"{means['ours'] / means['pyvrp']:.4f}")
        known = BEST_KNOWN.get(instance)
        cells.append(f"{known[1]:.1f} ({known[0]})" if known else "–")
        print("| " + " | ".join(cells) + " |")
    print()
    print("¹ Proven distance-minimal optimum (fleet unconstrained up to the instance's limit) from"
          " M. Solomon's VRPTW pages, arc lengths truncated to one decimal (so a little below"
          " the same routes in unrounded distances).")


if __name__ == "__main__":
    main()
