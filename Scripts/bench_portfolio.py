#!/usr/bin/env python3
"""The Python side of the portfolio benchmark (Scripts/bench-stages.sh, issue #16): stock grpcio
clients, stubs generated from proto/ by grpcio-tools (Scripts/install-deps.sh installs both).

  bench_portfolio.py sample  ADDR --out FILE --regions "310101 310102" [--per-region 200]
      accounts to pay: one ListAccounts page (REMOTE and FIELD accounts) per region, ids to FILE
  bench_portfolio.py pay     ADDR --accounts FILE --label TEXT [--concurrency 8] [--rate 200]
                                  [--count 2000] [--seconds 60] [--stop-file PATH] [--ready-file PATH] [--run ID]
      RecordPayment (1.00 CNY, unique request and external ids) on random accounts of FILE from
      CONCURRENCY callers, each on its own connection, paced to RATE payments/s in all (0 = as
      fast as they answer; a caller that fell behind its pace sends at once), until COUNT
      payments, SECONDS, or STOP_FILE exists; prints count, errors by status code, mean, p50,
      p99 and max latency (each call from send to answer)
  bench_portfolio.py plan-day ADDR --region R [--crews 30] [--crew-size 2] [--capacity 8]
                                  [--max-candidates 5000] [--time-limit 0] [--timeout 120] [--run ID]
      registers one agency serving R and CREWS x CREW_SIZE collectors with homes in the city,
      then times one PlanDay (fill with candidates) for the day after tomorrow end to end
  bench_portfolio.py h2log FILE
      per-request latency of an h2load --log-file: count, non-200 answers, p50, p99, max

The bearer token (role platform) comes from the environment, BENCH_TOKEN. Stubs are generated
once into STUBS_DIR (environment; default a new temporary directory).
"""

import argparse
import datetime
import importlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import zoneinfo

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PROTO = os.path.join(ROOT, "proto")
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
# The city of the dense field region (accounts-loadgen --field-region): centre and half sides in
# degrees.
CITY = (31.2, 121.5)
HALF_SIDE = (0.15, 0.18)


def load_stubs():
    """Generates the accounts, scheduling and type stubs into STUBS_DIR (once) and imports them."""
    out = os.environ.get("STUBS_DIR") or tempfile.mkdtemp(prefix="doorstep-stubs-")
    files = ["doorstep/type/v1/types.proto", "doorstep/accounts/v1/accounts.proto",
             "doorstep/scheduling/v1/scheduling.proto"]
    if not os.path.exists(os.path.join(out, "doorstep", "scheduling", "v1", "scheduling_pb2_grpc.py")):
        os.makedirs(out, exist_ok=True)
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO, f"--python_out={out}",
                        f"--grpc_python_out={out}", *files], check=True)
        for dirpath, _, _ in os.walk(out):
            open(os.path.join(dirpath, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    return {name: importlib.import_module(name) for name in (
        "doorstep.type.v1.types_pb2", "doorstep.accounts.v1.accounts_pb2", "doorstep.accounts.v1.accounts_pb2_grpc",
        "doorstep.scheduling.v1.scheduling_pb2", "doorstep.scheduling.v1.scheduling_pb2_grpc")}


def metadata():
    token = os.environ.get("BENCH_TOKEN")
    if not token:
        sys.exit("bench_portfolio: BENCH_TOKEN (a platform bearer token) is not set")
    return (("authorization", f"Bearer {token}"),)


def channel(grpc, addr):
    # Each caller its own HTTP/2 connection (grpcio shares one per target unless told not to).
    return grpc.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1)])


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_line(seconds):
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return "no answers"
    return (f"mean {sum(ms) / len(ms):.1f} ms, p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
            f"max {ms[-1]:.1f} ms")


def civil(types, date):
    return types.Date(year=date.year, month=date.month, day=date.day)


def sample(args):
    import grpc
    stubs = load_stubs()
    accounts, accounts_grpc = stubs["doorstep.accounts.v1.accounts_pb2"], stubs["doorstep.accounts.v1.accounts_pb2_grpc"]
    client = accounts_grpc.AccountsStub(channel(grpc, args.addr))
    ids = []
    for region in args.regions.split():
        page = client.ListAccounts(accounts.ListAccountsRequest(
            page_size=args.per_region, region_code=region, stages=[accounts.STAGE_REMOTE, accounts.STAGE_FIELD]),
            metadata=metadata(), timeout=60)
        ids += [account.id for account in page.accounts]
    if not ids:
        sys.exit(f"bench_portfolio: ListAccounts found no REMOTE or FIELD account in {args.regions}")
    with open(args.out, "w") as out:
        out.write("\n".join(ids) + "\n")
    print(f"payments: {len(ids)} accounts of {len(args.regions.split())} regions to pay (ListAccounts)")


def pay(args):
    import grpc
    stubs = load_stubs()
    types, accounts = stubs["doorstep.type.v1.types_pb2"], stubs["doorstep.accounts.v1.accounts_pb2"]
    accounts_grpc = stubs["doorstep.accounts.v1.accounts_pb2_grpc"]
    ids = [line.strip() for line in open(args.accounts) if line.strip()]
    run = args.run or f"{int(time.time())}-{os.getpid()}"
    auth = metadata()
    lock = threading.Lock()
    latencies, errors = [], {}
    issued = [0]
    started = time.monotonic()
    deadline = started + args.seconds
    interval = args.concurrency / args.rate if args.rate > 0 else 0.0

    def next_number():
        with lock:
            if issued[0] >= args.count or time.monotonic() >= deadline:
                return None
            if args.stop_file and os.path.exists(args.stop_file):
                return None
            issued[0] += 1
            return issued[0]

    def caller(index):
        client = accounts_grpc.AccountsStub(channel(grpc, args.addr))
        rng = random.Random(f"{run}-{index}")
        due = time.monotonic() + interval * index / args.concurrency
        while True:
            if interval:
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                due += interval
            number = next_number()
            if number is None:
                return
            request = accounts.RecordPaymentRequest(
                request_id=f"bench-pay-{run}-{number}", account_id=rng.choice(ids),
                amount=types.Money(amount_minor=100, currency_code="CNY"), received_ms=int(time.time() * 1000),
                external_id=f"bench-pay-{run}-{number}")
            begun = time.perf_counter()
            try:
                client.RecordPayment(request, metadata=auth, timeout=args.call_timeout)
                took = time.perf_counter() - begun
                with lock:
                    latencies.append(took)
            except grpc.RpcError as error:
                with lock:
                    code = error.code().name if error.code() else "UNKNOWN"
                    count, first = errors.get(code, (0, error.details()))
                    errors[code] = (count + 1, first)

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(args.concurrency)]
    for thread in threads:
        thread.start()
    if args.ready_file:
        open(args.ready_file, "w").close()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    failed = sum(count for count, _ in errors.values())
    print(f"payments ({args.label}): {len(latencies)} recorded, {failed} failed in {elapsed:.1f} s "
          f"({len(latencies) / elapsed if elapsed else 0:.0f}/s; {args.concurrency} callers"
          f"{f', paced to {args.rate:g}/s' if args.rate > 0 else ''}); {latency_line(latencies)}")
    for code, (count, first) in sorted(errors.items()):
        print(f"payments ({args.label}): {count} x {code}, e.g. {first}")
    if args.summary:
        ms = sorted(s * 1000 for s in latencies)
        with open(args.summary, "w") as out:
            out.write(f"{len(latencies)} {failed} {percentile(ms, 0.99) if ms else 'nan'}\n")


def plan_day(args):
    import grpc
    stubs = load_stubs()
    types = stubs["doorstep.type.v1.types_pb2"]
    scheduling, scheduling_grpc = stubs["doorstep.scheduling.v1.scheduling_pb2"], stubs["doorstep.scheduling.v1.scheduling_pb2_grpc"]
    client = scheduling_grpc.SchedulingStub(channel(grpc, args.addr))
    auth = metadata()
    run = args.run or f"{int(time.time())}-{os.getpid()}"
    today = datetime.datetime.now(ZONE).date()
    began = time.perf_counter()
    agency = client.RegisterAgency(scheduling.RegisterAgencyRequest(request_id=f"bench-agency-{run}", agency=scheduling.Agency(
        display_name="Portfolio bench agency", licence_number=f"PORTFOLIO-{run}",
        licence_expiry_date=types.Date(year=2099, month=1, day=1), regions_served=[args.region],
        last_inspection_date=civil(types, today - datetime.timedelta(days=30)))), metadata=auth, timeout=30)
    collectors = args.crews * args.crew_size
    for n in range(collectors):
        # Homes spread over the city (an R2 sequence, as the loadgen places debtors).
        u = (0.5 + 0.7548776662466927 * (n + 1)) % 1
        v = (0.5 + 0.5698402909980533 * (n + 1)) % 1
        home = types.GeoPoint(latitude=CITY[0] + HALF_SIDE[0] * (2 * u - 1), longitude=CITY[1] + HALF_SIDE[1] * (2 * v - 1))
        client.RegisterCollector(scheduling.RegisterCollectorRequest(request_id=f"bench-col-{run}-{n}", collector=scheduling.Collector(
            agency_id=agency.id, full_name=f"Collector {n}", certification_number=f"PORTFOLIO-{run}-{n}",
            certification_expiry_date=types.Date(year=2099, month=1, day=1), region_code=args.region, home_location=home,
            time_zone="Asia/Shanghai", shift_start=types.TimeOfDay(hours=8), shift_end=types.TimeOfDay(hours=20),
            daily_capacity=args.capacity)), metadata=auth, timeout=30)
    print(f"PlanDay: agency {agency.id} and {collectors} collectors ({args.crews} crews of {args.crew_size}, "
          f"capacity {args.capacity}) registered in {time.perf_counter() - began:.2f} s")
    day = today + datetime.timedelta(days=2)  # the 24 h advance notice of cn-2026 leaves tomorrow's morning out
    request = scheduling.PlanDayRequest(region_code=args.region, date=civil(types, day), time_zone="Asia/Shanghai",
                                        options=scheduling.PlanDayOptions(fill_with_candidates=True,
                                                                          max_candidates=args.max_candidates,
                                                                          time_limit_seconds=args.time_limit))
    began = time.perf_counter()
    try:
        plan = client.PlanDay(request, metadata=auth, timeout=args.timeout)
    except grpc.RpcError as error:
        took = time.perf_counter() - began
        print(f"PlanDay {args.region} {day}: FAILED after {took:.2f} s: {error.code().name}: {error.details()}")
        sys.exit(1)
    took = time.perf_counter() - began
    totals = plan.totals
    reasons = {}
    for item in plan.unassigned:
        name = scheduling.UnassignedReason.Name(item.reason).removeprefix("UNASSIGNED_REASON_")
        reasons[name] = reasons.get(name, 0) + 1
    considered = totals.candidates_routed + sum(1 for item in plan.unassigned if item.WhichOneof("target") == "account_id")
    print(f"PlanDay {args.region} {day}: {took:.2f} s end to end (solver {plan.solve_millis} ms); "
          f"{totals.candidates_routed} visits planned on {totals.routes} routes, "
          f"{considered} candidates considered (max_candidates {args.max_candidates}), feasible {plan.feasible}")
    print(f"PlanDay {args.region} {day}: unassigned {totals.unassigned} "
          f"({', '.join(f'{n} {r}' for r, n in sorted(reasons.items(), key=lambda x: -x[1])) or 'none'}); "
          f"distance {totals.distance_meters / 1000:.0f} km, expected recovery {totals.expected_recovery.amount_minor / 100:.2f} "
          f"{totals.expected_recovery.currency_code}, net {totals.net_value.amount_minor / 100:.2f}")
    if args.summary:
        with open(args.summary, "w") as out:
            out.write(f"{took:.3f} {totals.candidates_routed} {considered}\n")


def h2log(args):
    durations, other = [], 0
    for line in open(args.file):
        columns = line.split("\t")
        if len(columns) < 3:
            continue
        if columns[1] != "200":
            other += 1
        durations.append(int(columns[2]) / 1e6)
    ms = sorted(s * 1000 for s in durations)
    p99 = percentile(ms, 0.99) if ms else float("nan")
    print(f"{len(durations)} answers ({other} not HTTP 200): {latency_line(durations)}")
    if args.summary:
        with open(args.summary, "w") as out:
            out.write(f"{len(durations)} {p99}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("sample")
    s.add_argument("addr")
    s.add_argument("--out", required=True)
    s.add_argument("--regions", required=True)
    s.add_argument("--per-region", type=int, default=200)
    p = commands.add_parser("pay")
    p.add_argument("addr")
    p.add_argument("--accounts", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--stop-file")
    p.add_argument("--ready-file", help="created once the callers have started")
    p.add_argument("--call-timeout", type=float, default=30)
    p.add_argument("--run")
    p.add_argument("--summary", help="write 'recorded failed p99_ms' to this file")
    d = commands.add_parser("plan-day")
    d.add_argument("addr")
    d.add_argument("--region", required=True)
    d.add_argument("--crews", type=int, default=30)
    d.add_argument("--crew-size", type=int, default=2)
    d.add_argument("--capacity", type=int, default=8)
    d.add_argument("--max-candidates", type=int, default=5000)
    d.add_argument("--time-limit", type=int, default=0)
    d.add_argument("--timeout", type=float, default=120)
    d.add_argument("--run")
    d.add_argument("--summary", help="write 'seconds visits considered' to this file")
    h = commands.add_parser("h2log")
    h.add_argument("file")
    h.add_argument("--summary", help="write 'answers p99_ms' to this file")
    args = parser.parse_args()
    if args.command == "pay" and (args.concurrency < 1 or args.count < 1 or args.seconds <= 0):
        parser.error("pay: --concurrency, --count and --seconds must be positive")
    {"sample": sample, "pay": pay, "plan-day": plan_day, "h2log": h2log}[args.command](args)


if __name__ == "__main__":
    main()
