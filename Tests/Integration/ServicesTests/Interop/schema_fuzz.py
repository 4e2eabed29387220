#!/usr/bin/env python3
"""Schema-driven bad input against the running services, with a stock grpcio client.

For every RPC of doorstep.accounts.v1.Accounts, doorstep.scheduling.v1.Scheduling and
doorstep.visits.v1.Visits, builds random requests from the message descriptors (empty,
oversized and non-ASCII strings, U+0000, extreme and negative integers, unknown enum numbers,
nested messages, long repeated fields, NaN/inf doubles) and calls the service with a
platform token. A call must end with a status a client can act on — never INTERNAL, UNKNOWN
or DATA_LOSS, and never UNAVAILABLE, since every service (and so every peer) is up while
this runs — and the service must keep answering Health/Check.

Usage: schema_fuzz.py --accounts HOST:PORT --scheduling HOST:PORT --visits HOST:PORT
                      --token JWT [--calls-per-method N] [--seed S]
Prints one line per method ("ok SERVICE/METHOD codes=…" or "FAIL …") and exits 1 on a failure.
"""

import argparse
import importlib
import math
import os
import random
import signal
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import message_factory

signal.pthread_sigmask(signal.SIG_SETMASK, [])

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
PROTO = os.path.join(ROOT, "proto")
SERVICES = {
    "accounts": ("doorstep/accounts/v1/accounts.proto", "doorstep.accounts.v1.accounts_pb2", "Accounts"),
    "scheduling": ("doorstep/scheduling/v1/scheduling.proto", "doorstep.scheduling.v1.scheduling_pb2", "Scheduling"),
    "visits": ("doorstep/visits/v1/visits.proto", "doorstep.visits.v1.visits_pb2", "Visits"),
}
# Statuses that mean "the server broke", not "the request was bad". UNAVAILABLE is one of
# them here: every peer is up, so a peer's failure turned into "retry later" would hide a
# request that can never succeed.
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS,
          grpc.StatusCode.UNAVAILABLE}


def load_modules():
    out = tempfile.mkdtemp(prefix="doorstep-fuzz-stubs-")
    files = ["doorstep/type/v1/types.proto"] + [spec[0] for spec in SERVICES.values()]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO, f"--python_out={out}", *files], check=True)
    for dirpath, _, _ in os.walk(out):
        open(os.path.join(dirpath, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    return {name: importlib.import_module(spec[1]) for name, spec in SERVICES.items()}


STRINGS = ["", "a", "x" * 5000, "中文地址", "\U0001F600", "a\x00b", " ", "acc_01J00000000000000000000000",
           "dbt_01J00000000000000000000000", "agy_01J00000000000000000000000", "Asia/Shanghai", "CNY", "310115",
           "../../etc/passwd", "' OR 1=1 --", "%s%n", "\u202e", "0" * 64, "Z" * 65]
INTS = [0, 1, -1, 2**31 - 1, -(2**31), 7, 100000, 3]
INT64S = INTS + [2**63 - 1, -(2**63), 1_773_100_800_000, 946_684_799_999, 4_102_444_800_001]
DOUBLES = [0.0, -0.0, 91.0, -181.0, 31.2, 121.4, float("nan"), float("inf"), -float("inf"), 1e308]


# Ids of real resources (made by `seed`), so requests get past "not found" into deeper rules.
REAL_IDS = {}


def seed(modules, channels, metadata):
    """Creates a debtor, an account and an agency with valid requests; remembers their ids."""
    import datetime
    import uuid
    from google.protobuf import json_format
    accounts, scheduling = modules["accounts"], modules["scheduling"]
    today = datetime.date.today()
    def day(offset):
        d = today + datetime.timedelta(days=offset)
        return {"year": d.year, "month": d.month, "day": d.day}
    def call(channel, path, request, response_class):
        rpc = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=response_class.FromString)
        return rpc(request, timeout=10, metadata=metadata)
    debtor = call(channels["accounts"], "/doorstep.accounts.v1.Accounts/CreateDebtor", json_format.ParseDict({
        "requestId": str(uuid.uuid4()), "debtor": {
            "externalId": "fuzz-" + uuid.uuid4().hex[:12], "fullName": "Fuzz", "nationalId": "11010519491231002X",
            "phone": "13812345678", "timeZone": "Asia/Shanghai",
            "address": {"text": "x", "regionCode": "310115", "location": {"latitude": 31.2, "longitude": 121.4}},
            "emergencyContacts": [{"fullName": "E", "relationship": "RELATIONSHIP_SPOUSE", "phone": "13900000000"}]}},
        accounts.CreateDebtorRequest()), accounts.Debtor)
    money = lambda a: {"amountMinor": str(a), "currencyCode": "CNY"}
    account = call(channels["accounts"], "/doorstep.accounts.v1.Accounts/OpenAccount", json_format.ParseDict({
        "requestId": str(uuid.uuid4()), "debtorId": debtor.id, "externalId": "fuzz-" + uuid.uuid4().hex[:12],
        "lenderId": "lender-1", "product": "PRODUCT_TYPE_INSTALMENT_LOAN", "principal": money(300000),
        "openedDate": day(-120), "instalments": [{"dueDate": day(-90 + 30 * i), "amountDue": money(100000)} for i in range(3)]},
        accounts.OpenAccountRequest()), accounts.Account)
    agency = call(channels["scheduling"], "/doorstep.scheduling.v1.Scheduling/RegisterAgency", json_format.ParseDict({
        "requestId": str(uuid.uuid4()), "agency": {
            "displayName": "Fuzz Agency", "licenceNumber": "FUZZ-" + uuid.uuid4().hex[:8], "licenceExpiryDate": day(365),
            "regionsServed": ["310115"], "lastInspectionDate": day(-30)}},
        scheduling.RegisterAgencyRequest()), scheduling.Agency)
    REAL_IDS.update({"dbt": debtor.id, "acc": account.id, "agy": agency.id,
                     "emc": debtor.emergency_contacts[0].id if debtor.emergency_contacts else ""})


def field_string(field, rng):
    """A string for a field: ids of real resources and valid request ids most of the time."""
    if field.name == "request_id" and rng.random() < 0.8:
        return "fuzz-%016x" % rng.getrandbits(64)
    if field.name.endswith("_id") and REAL_IDS and rng.random() < 0.7:
        prefix = {"debtor_id": "dbt", "account_id": "acc", "agency_id": "agy", "emergency_contact_id": "emc"}.get(field.name)
        if prefix in REAL_IDS:
            return REAL_IDS[prefix]
    return rng.choice(STRINGS)


def fill(message, rng, depth=0):
    """Sets a random subset of the fields of `message`, recursively."""
    from google.protobuf.descriptor import FieldDescriptor as F
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.35:
            continue
        if field.containing_oneof is not None and message.WhichOneof(field.containing_oneof.name) is not None:
            continue
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == F.LABEL_REPEATED
        count = rng.choice([0, 1, 2, 3, 1200]) if repeated else 1
        if count > 50 and field.type == F.TYPE_MESSAGE:
            count = 60
        for _ in range(count):
            value = scalar(field, rng)
            if field.type == F.TYPE_MESSAGE:
                if depth >= 3:
                    break
                target = getattr(message, field.name).add() if repeated else getattr(message, field.name)
                if not repeated:
                    target.SetInParent()
                fill(target, rng, depth + 1)
            elif repeated:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)


def scalar(field, rng):
    from google.protobuf.descriptor import FieldDescriptor as F
    t = field.type
    if t == F.TYPE_STRING:
        return field_string(field, rng)
    if t == F.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 32, 300])))
    if t == F.TYPE_BOOL:
        return rng.random() < 0.5
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return rng.choice(INTS)
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return rng.choice(INT64S)
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return rng.choice([0, 1, 2**32 - 1])
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return rng.choice([0, 1, 2**64 - 1])
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return rng.choice(DOUBLES)
    if t == F.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return rng.choice(numbers + [99, -1])
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in SERVICES:
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--calls-per-method", type=int, default=25)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    modules = load_modules()
    rng = random.Random(args.seed)
    metadata = [("authorization", f"Bearer {args.token}")]
    failed = False
    channels = {name: grpc.insecure_channel(getattr(args, name)) for name in SERVICES}
    seed(modules, channels, metadata)
    for name, (_, _, service_name) in SERVICES.items():
        module = modules[name]
        service = module.DESCRIPTOR.services_by_name[service_name]
        channel = channels[name]
        health = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
        for method in service.methods:
            # The request type may be another package's (WatchEvents takes doorstep.type.v1's).
            request_class = message_factory.GetMessageClass(method.input_type)
            # An open-ended stream (WatchEvents) runs until its deadline: a short one, and
            # DEADLINE_EXCEEDED is its normal end; fewer calls (each takes the whole deadline).
            open_ended = method.server_streaming and not method.client_streaming and method.name.startswith("Watch")
            if method.server_streaming and not method.client_streaming:
                stream = channel.unary_stream(f"/{service.full_name}/{method.name}",
                                              request_serializer=lambda m: m.SerializeToString(),
                                              response_deserializer=lambda b: b)
                call = lambda request, timeout, metadata, stream=stream: list(stream(request, timeout=timeout, metadata=metadata))
            else:
                call = channel.unary_unary(f"/{service.full_name}/{method.name}",
                                           request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=lambda b: b)
            codes = {}
            problem = None
            for attempt in range(min(args.calls_per_method, 8) if open_ended else args.calls_per_method):
                request = request_class()
                if attempt > 0:
                    fill(request, rng)
                try:
                    call(request, timeout=0.5 if open_ended else 10, metadata=metadata)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    code = error.code()
                    if code in BROKEN or (code == grpc.StatusCode.DEADLINE_EXCEEDED and not open_ended):
                        problem = f"{code.name}: {error.details()!r} for {request}"[:600]
                codes[code.name] = codes.get(code.name, 0) + 1
                if problem:
                    break
            try:
                health(b"", timeout=5)
            except grpc.RpcError as error:
                problem = problem or f"health check failed afterwards: {error.code().name}"
            summary = ",".join(f"{k}:{v}" for k, v in sorted(codes.items()))
            if problem:
                failed = True
                print(f"FAIL {service.full_name}/{method.name}: {problem}")
            else:
                print(f"ok {service.full_name}/{method.name} codes={summary}")
            sys.stdout.flush()
        channel.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
