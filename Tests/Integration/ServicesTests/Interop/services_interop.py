#!/usr/bin/env python3
"""Stock-gRPC interop checks against the three running Doorstep services.

A Python grpcio client, with stubs generated from proto/ by grpcio-tools, calls the accounts,
scheduling and visits services (doorstep.accounts.v1.Accounts, doorstep.scheduling.v1.Scheduling,
doorstep.visits.v1.Visits, each also serving grpc.health.v1.Health) over plaintext HTTP/2.

Usage:
    services_interop.py --accounts HOST:PORT --scheduling HOST:PORT --visits HOST:PORT \
                        --tokens FILE [--only NAME,NAME,...]

FILE is JSON mapping role to a signed token:
    {"platform": "<jwt>", "compliance": "<jwt>", "collector": "<jwt>", "service": "<jwt>",
     "agency_manager": "<jwt>"}
Tokens are sent as the metadata `authorization: Bearer <jwt>`; health calls carry none.

Checks are named SERVICE.CHECK (e.g. `accounts.health_serving`). Per service:
    health_serving     Health/Check "" and the full service name -> SERVING
    unauthenticated    a domain RPC without a token, and with "Bearer garbage" -> UNAUTHENTICATED
    permission_denied  a domain RPC by a role its table forbids -> PERMISSION_DENIED
    unimplemented      an unknown method on the service's path -> UNIMPLEMENTED
    deadline_exceeded  Health/Watch "" with a 0.3 s deadline: SERVING, then DEADLINE_EXCEEDED
    metadata_echo      Health/Check with x-request-id -> echoed in the initial metadata
    invalid_argument   a request with one bad field -> INVALID_ARGUMENT whose message starts
                       with the field's path
    not_found          a well-formed but unknown id -> NOT_FOUND
and the domain flows `accounts.create_open_get`, `accounts.debtor_corrections` (a visit finds
the address wrong; UpdateDebtor corrects it; ListDebtorChanges shows who changed what),
`accounts.personal_data_access` (ListPersonalDataAccess: the audit of revealing reads;
ExportDebtorRecord: a subject-access export),
`accounts.bulk_import` (ImportAccounts and ImportPayments as bidirectional streams),
`accounts.placements` (PlaceAccounts and RecallAccounts: Refusal details, idempotency, roles),
`scheduling.place_region` (PlaceRegion over a region of its own, then SuspendAgency recalls
through the outbox; it also needs --accounts and --visits),
`scheduling.register_agency_collector`, `scheduling.agency_lifecycle` (every registry RPC:
agencies and collectors read, listed, updated, inspected, suspended, reinstated and exited,
and ListExpiring) and `scheduling.wrong_address_refused` (CheckCompliance names
`debtor-location` while accounts holds the address unverified; it also needs --accounts).

--only takes a comma-separated list; each item is a full check name (`accounts.not_found`), a
service name (`visits`: all its checks) or a bare check name (`health_serving`: that check on
every service). Only the addresses of the services whose checks run are required.

Prints one line per check ("ok NAME" or "FAIL NAME: why") and exits 1 if any failed (2 on a
usage error).
"""

import argparse
import datetime
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import types
import uuid

import grpc

# A child started from a Swift test inherits the spawning thread's signal mask, where
# SwiftNIO/Dispatch block most signals (SIGTERM included): unblock them, or this process
# cannot be stopped and gRPC's own machinery misbehaves.
import signal  # noqa: E402
signal.pthread_sigmask(signal.SIG_SETMASK, [])

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
PROTO = os.path.join(ROOT, "proto")

# Every RPC gets this deadline, except the Health/Watch of the deadline check.
RPC_TIMEOUT = 10.0
WATCH_TIMEOUT = 0.3
WATCH_MAX_SECONDS = 2.0

SERVICES = ("accounts", "scheduling", "visits")
FULL_SERVICE_NAMES = {
    "accounts": "doorstep.accounts.v1.Accounts",
    "scheduling": "doorstep.scheduling.v1.Scheduling",
    "visits": "doorstep.visits.v1.Visits",
}
ROLES = ("platform", "compliance", "collector", "service", "agency_manager")

# Asia/Shanghai has been UTC+8 without daylight saving since 1991.
SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
REGION = "310115"  # Pudong New Area, Shanghai (GB/T 2260)
PUDONG = (31.2397, 121.4998)

# A resource id: `<prefix>_` then a ULID, 26 characters of Crockford base32 (types.proto).
ULID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_PATTERN = re.compile(r"^[a-z]{3}_[0-7][0-9A-HJKMNP-TV-Z]{25}$")


# ---------------------------------------------------------------------------
# Stubs
# ---------------------------------------------------------------------------

def load_stubs():
    """Generates Python stubs for the three services, their shared types and health into a temp
    dir and imports them; returns them as a namespace."""
    out = tempfile.mkdtemp(prefix="doorstep-stubs-")
    files = ["doorstep/type/v1/types.proto", "doorstep/accounts/v1/accounts.proto",
             "doorstep/scheduling/v1/scheduling.proto", "doorstep/visits/v1/visits.proto",
             "grpc/health/v1/health.proto"]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO, f"--python_out={out}",
                    f"--grpc_python_out={out}", *files], check=True)
    # The generated package `grpc.health.v1` would shadow grpcio's `grpc`: move it aside.
    os.rename(os.path.join(out, "grpc"), os.path.join(out, "grpc_health_stubs"))
    for dirpath, _, _ in os.walk(out):
        open(os.path.join(dirpath, "__init__.py"), "a").close()
    health_dir = os.path.join(out, "grpc_health_stubs", "health", "v1")
    for name in ("health_pb2_grpc.py",):
        path = os.path.join(health_dir, name)
        text = open(path).read().replace("from grpc.health.v1 import", "from grpc_health_stubs.health.v1 import")
        open(path, "w").write(text)
    sys.path.insert(0, out)
    return types.SimpleNamespace(
        types=importlib.import_module("doorstep.type.v1.types_pb2"),
        accounts=importlib.import_module("doorstep.accounts.v1.accounts_pb2"),
        accounts_grpc=importlib.import_module("doorstep.accounts.v1.accounts_pb2_grpc"),
        scheduling=importlib.import_module("doorstep.scheduling.v1.scheduling_pb2"),
        scheduling_grpc=importlib.import_module("doorstep.scheduling.v1.scheduling_pb2_grpc"),
        visits=importlib.import_module("doorstep.visits.v1.visits_pb2"),
        visits_grpc=importlib.import_module("doorstep.visits.v1.visits_pb2_grpc"),
        health=importlib.import_module("grpc_health_stubs.health.v1.health_pb2"),
        health_grpc=importlib.import_module("grpc_health_stubs.health.v1.health_pb2_grpc"),
    )


# ---------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------

class Failed(Exception):
    pass


def expect(condition, why):
    if not condition:
        raise Failed(why)


def expect_code(call, code, field=None, what=None):
    """Runs `call`, which must fail with `code`; with `field`, the status message must start with
    that field path (types.proto: "the message names the field", e.g. "visit_id: required").
    Returns the error."""
    prefix = f"{what}: " if what else ""
    try:
        call()
    except grpc.RpcError as error:
        details = error.details() or ""
        expect(error.code() == code, f"{prefix}expected {code.name}, got {error.code().name}: {details!r}")
        if field is not None:
            expect(details.startswith(field), f"{prefix}expected a message naming {field!r}, got {details!r}")
        return error
    raise Failed(f"{prefix}expected {code.name}, but the call succeeded")


def expect_id(value, prefix, what):
    expect(value.startswith(prefix + "_"), f"{what}: {value!r} does not start with {prefix + '_'!r}")
    expect(ID_PATTERN.match(value) is not None,
           f"{what}: {value!r} is not {prefix}_ followed by 26 Crockford base32 characters")


def unknown_id(prefix):
    """A well-formed id (prefix, "_", 26 Crockford base32 characters) that no server assigned."""
    value = f"{prefix}_01J" + "0" * 23
    assert len(value) == len(prefix) + 1 + 26 and ID_PATTERN.match(value)
    return value


def fresh(label):
    """A fresh caller-side identifier (external ids, licence numbers): printable ASCII, no spaces."""
    return f"interop-{label}-{uuid.uuid4().hex[:16]}"


def request_id():
    return str(uuid.uuid4())


def random_id(prefix):
    """A well-formed resource id no server assigned, different on every call (e.g. the id of a
    visit as the visits service would report it)."""
    return f"{prefix}_01J" + "".join(ULID_CHARS[b % 32] for b in os.urandom(23))


# ---------------------------------------------------------------------------
# Dates and money
# ---------------------------------------------------------------------------

def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def shanghai_today():
    return datetime.datetime.now(SHANGHAI).date()


def pb_date(pb, day):
    return pb.types.Date(year=day.year, month=day.month, day=day.day)


def py_date(message, what):
    try:
        return datetime.date(message.year, message.month, message.day)
    except ValueError:
        raise Failed(f"{what}: not a valid date: {message.year}-{message.month}-{message.day}") from None


def cny(pb, amount_minor):
    return pb.types.Money(amount_minor=amount_minor, currency_code="CNY")


def bucket_for(pb, days_past_due):
    """The default delinquency bucket of a days-past-due value (accounts.proto, enum Bucket)."""
    a = pb.accounts
    if days_past_due <= 0:
        return a.BUCKET_CURRENT
    if days_past_due <= 30:
        return a.BUCKET_M1
    if days_past_due <= 60:
        return a.BUCKET_M2
    if days_past_due <= 90:
        return a.BUCKET_M3
    return a.BUCKET_M4_PLUS


# ---------------------------------------------------------------------------
# Connection context
# ---------------------------------------------------------------------------

class Context:
    """Channels (one per service, opened on first use), stubs and bearer metadata."""

    def __init__(self, pb, addresses, tokens, tokens_path, credentials=None):
        self.pb = pb
        self.addresses = addresses
        self.tokens = tokens
        self.tokens_path = tokens_path
        self.credentials = credentials
        self.channels = {}

    def channel(self, service):
        if service not in self.channels:
            if self.credentials is None:
                self.channels[service] = grpc.insecure_channel(self.addresses[service])
            else:
                self.channels[service] = grpc.secure_channel(self.addresses[service], self.credentials)
        return self.channels[service]

    def health(self, service):
        return self.pb.health_grpc.HealthStub(self.channel(service))

    def accounts(self):
        return self.pb.accounts_grpc.AccountsStub(self.channel("accounts"))

    def scheduling(self):
        return self.pb.scheduling_grpc.SchedulingStub(self.channel("scheduling"))

    def visits(self):
        return self.pb.visits_grpc.VisitsStub(self.channel("visits"))

    def raw(self, service, method):
        """An untyped unary call to /<full service name>/<method> taking and returning bytes."""
        return self.channel(service).unary_unary(f"/{FULL_SERVICE_NAMES[service]}/{method}",
                                                 request_serializer=lambda b: b,
                                                 response_deserializer=lambda b: b)

    def auth(self, role):
        """Call metadata carrying the role's bearer token."""
        token = self.tokens.get(role)
        expect(isinstance(token, str) and token, f"no {role!r} token in {self.tokens_path}")
        return [("authorization", f"Bearer {token}")]

    def close(self):
        for channel in self.channels.values():
            channel.close()


# ---------------------------------------------------------------------------
# Request builders
# ---------------------------------------------------------------------------

def create_debtor_request(pb, national_id="11010519491231002X"):
    """A valid CreateDebtor request with a fresh request_id and external_id."""
    return pb.accounts.CreateDebtorRequest(
        request_id=request_id(),
        debtor=pb.accounts.Debtor(
            external_id=fresh("dbt"),
            full_name="张三",
            national_id=national_id,
            phone="13812345678",
            address=pb.types.Address(
                text="上海市浦东新区世纪大道100号 12楼1203室",
                region_code=REGION,
                postal_code="200120",
                location=pb.types.GeoPoint(latitude=PUDONG[0], longitude=PUDONG[1])),
            time_zone="Asia/Shanghai"))


def open_account_request(pb, debtor_id):
    """A valid OpenAccount request: 3 monthly instalments of 1,000.00 CNY, the first due 45 days
    ago (UTC dates), so the account opens in REMOTE."""
    a = pb.accounts
    today = utc_today()
    return a.OpenAccountRequest(
        request_id=request_id(), debtor_id=debtor_id, external_id=fresh("acc"), lender_id="lender-1",
        product=a.PRODUCT_TYPE_CASH_LOAN, principal=cny(pb, 300000),
        opened_date=pb_date(pb, today - datetime.timedelta(days=75)),
        instalments=[a.OpeningInstalment(due_date=pb_date(pb, today + datetime.timedelta(days=-45 + 30 * i)),
                                         amount_due=cny(pb, 100000)) for i in range(3)])


def last_shanghai_noon_ms():
    """The last 12:00 in Shanghai at least 5 minutes ago, in ms: a time inside every pack's
    contact hours, whatever the hour of the run."""
    now = datetime.datetime.now(SHANGHAI)
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon > now - datetime.timedelta(minutes=5):
        noon -= datetime.timedelta(days=1)
    return int(noon.timestamp() * 1000)


def report_wrong_address(ctx, account_id):
    """What the visits service delivers for a WRONG_ADDRESS visit outcome: a VISIT contact attempt
    with outcome CONTACT_OUTCOME_VISIT_WRONG_ADDRESS at the crew's check-in time (30 minutes ago),
    as role service. Returns (visit id, check-in ms)."""
    pb = ctx.pb
    visit_id = random_id("vis")
    attempted_ms = int(time.time() * 1000) - 30 * 60_000
    ctx.accounts().RecordContactAttempt(pb.accounts.RecordContactAttemptRequest(
        request_id=f"{visit_id}.contact", account_id=account_id, channel=pb.types.CONTACT_CHANNEL_VISIT,
        outcome=pb.accounts.CONTACT_OUTCOME_VISIT_WRONG_ADDRESS, attempted_ms=attempted_ms, visit_id=visit_id),
        timeout=RPC_TIMEOUT, metadata=ctx.auth("service"))
    return visit_id, attempted_ms


def register_agency_request(pb, display_name=None):
    """A valid RegisterAgency request with a fresh request_id and licence number."""
    today = utc_today()
    return pb.scheduling.RegisterAgencyRequest(
        request_id=request_id(),
        agency=pb.scheduling.Agency(
            display_name=f"上海互操作催收服务有限公司 {uuid.uuid4().hex[:8]}" if display_name is None else display_name,
            licence_number=fresh("lic"),
            licence_expiry_date=pb_date(pb, today + datetime.timedelta(days=365)),
            regions_served=[REGION],
            last_inspection_date=pb_date(pb, today - datetime.timedelta(days=30))))


def register_collector_request(pb, agency_id):
    """A valid RegisterCollector request for `agency_id` with a fresh certification number."""
    return pb.scheduling.RegisterCollectorRequest(
        request_id=request_id(),
        collector=pb.scheduling.Collector(
            agency_id=agency_id,
            full_name="李四",
            certification_number=fresh("cert"),
            certification_expiry_date=pb_date(pb, utc_today() + datetime.timedelta(days=365)),
            region_code=REGION,
            home_location=pb.types.GeoPoint(latitude=31.2304, longitude=121.4737),
            time_zone="Asia/Shanghai",
            shift_start=pb.types.TimeOfDay(hours=9, minutes=0),
            shift_end=pb.types.TimeOfDay(hours=18, minutes=0),
            daily_capacity=8))


# ---------------------------------------------------------------------------
# Transport checks, the same on every service
# ---------------------------------------------------------------------------

def check_health_serving(ctx, service):
    """Health/Check for the overall status ("") and for the service's full name: SERVING."""
    health = ctx.pb.health
    stub = ctx.health(service)
    for name in ("", FULL_SERVICE_NAMES[service]):
        response = stub.Check(health.HealthCheckRequest(service=name), timeout=RPC_TIMEOUT)
        expect(response.status == health.HealthCheckResponse.SERVING,
               f"service {name!r}: status {health.HealthCheckResponse.ServingStatus.Name(response.status)}")


def check_unimplemented(ctx, service):
    """An unknown method on the service's own path: UNIMPLEMENTED (sent with a valid platform
    token, so that only the method can be at fault)."""
    unknown = ctx.raw(service, "NoSuchMethod")
    expect_code(lambda: unknown(b"", timeout=RPC_TIMEOUT, metadata=ctx.auth("platform")),
                grpc.StatusCode.UNIMPLEMENTED)


def check_deadline_exceeded(ctx, service):
    """Health/Watch never ends by itself: with a 0.3 s deadline it yields SERVING, then the
    stream ends with DEADLINE_EXCEEDED within 2 s."""
    health = ctx.pb.health
    started = time.monotonic()
    responses = ctx.health(service).Watch(health.HealthCheckRequest(service=""), timeout=WATCH_TIMEOUT)
    try:
        try:
            first = next(responses)
        except StopIteration:
            raise Failed("the stream ended with OK before its first message") from None
        except grpc.RpcError as error:
            raise Failed(f"no first message: {error.code().name}: {error.details()!r}") from None
        expect(first.status == health.HealthCheckResponse.SERVING,
               f"first status {health.HealthCheckResponse.ServingStatus.Name(first.status)}")

        def drain():
            for _ in responses:  # further status changes, if any, are allowed
                pass
        expect_code(drain, grpc.StatusCode.DEADLINE_EXCEEDED, what="end of the stream")
    finally:
        responses.cancel()
    elapsed = time.monotonic() - started
    expect(elapsed < WATCH_MAX_SECONDS, f"the stream ended after {elapsed:.2f} s, not promptly after the deadline")


def check_metadata_echo(ctx, service):
    """A unary call with `x-request-id` gets the same value back in its initial metadata."""
    value = f"interop-{uuid.uuid4().hex}"
    health = ctx.pb.health
    _, call = ctx.health(service).Check.with_call(health.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT,
                                                  metadata=[("x-request-id", value)])
    echoed = [item[1] for item in call.initial_metadata() if item[0] == "x-request-id"]
    expect(echoed, f"no x-request-id in the initial metadata {list(call.initial_metadata())}")
    expect(all(v == value for v in echoed), f"x-request-id {echoed}, expected {value!r}")


# ---------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------

def check_accounts_unauthenticated(ctx):
    """GetAccount without a token and with an unverifiable one: UNAUTHENTICATED."""
    stub = ctx.accounts()
    request = ctx.pb.accounts.GetAccountRequest(account_id=unknown_id("acc"))
    expect_code(lambda: stub.GetAccount(request, timeout=RPC_TIMEOUT),
                grpc.StatusCode.UNAUTHENTICATED, what="without a token")
    expect_code(lambda: stub.GetAccount(request, timeout=RPC_TIMEOUT, metadata=[("authorization", "Bearer garbage")]),
                grpc.StatusCode.UNAUTHENTICATED, what="with 'Bearer garbage'")


def check_accounts_permission_denied(ctx):
    """CreateDebtor is platform-only; a collector token gets PERMISSION_DENIED."""
    request = create_debtor_request(ctx.pb)
    expect_code(lambda: ctx.accounts().CreateDebtor(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("collector")),
                grpc.StatusCode.PERMISSION_DENIED)


def check_accounts_invalid_argument(ctx):
    """CreateDebtor with national_id "123" (not an 18-character PRC id): INVALID_ARGUMENT naming
    debtor.national_id."""
    request = create_debtor_request(ctx.pb, national_id="123")
    expect_code(lambda: ctx.accounts().CreateDebtor(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("platform")),
                grpc.StatusCode.INVALID_ARGUMENT, field="debtor.national_id")


def check_accounts_not_found(ctx):
    """GetAccount of a well-formed, unknown id: NOT_FOUND."""
    request = ctx.pb.accounts.GetAccountRequest(account_id=unknown_id("acc"))
    expect_code(lambda: ctx.accounts().GetAccount(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("platform")),
                grpc.StatusCode.NOT_FOUND)


def check_accounts_create_open_get(ctx):
    """CreateDebtor (masked output, idempotent replay, request_id reuse refused), OpenAccount with
    a 6-instalment schedule whose first due date was 90 days ago (delinquency computed at once),
    GetAccount by platform, and by an agency manager the account is not assigned to (NOT_FOUND)."""
    pb = ctx.pb
    a = pb.accounts
    stub = ctx.accounts()
    platform = ctx.auth("platform")

    # CreateDebtor.
    create = create_debtor_request(pb)
    debtor = stub.CreateDebtor(create, timeout=RPC_TIMEOUT, metadata=platform)
    expect_id(debtor.id, "dbt", "debtor.id")
    expect(debtor.external_id == create.debtor.external_id, f"debtor.external_id {debtor.external_id!r}")
    expect(debtor.full_name == create.debtor.full_name, f"debtor.full_name {debtor.full_name!r}")
    expect(debtor.phone == "138****5678", f"debtor.phone {debtor.phone!r}, expected '138****5678'")
    expect(debtor.national_id == "110***********002X",
           f"debtor.national_id {debtor.national_id!r}, expected '110***********002X'")
    expect(debtor.personal_data_masked, "debtor.personal_data_masked is false")
    expect(debtor.version == 1, f"debtor.version {debtor.version}")

    # The same request_id and request: the first response again, nothing created twice.
    replay = stub.CreateDebtor(create, timeout=RPC_TIMEOUT, metadata=platform)
    expect(replay.id == debtor.id, f"replayed CreateDebtor returned id {replay.id!r}, first {debtor.id!r}")
    expect(replay == debtor, "replayed CreateDebtor returned a different response")

    # The same request_id with another request.
    changed = a.CreateDebtorRequest()
    changed.CopyFrom(create)
    changed.debtor.full_name = "王五"
    expect_code(lambda: stub.CreateDebtor(changed, timeout=RPC_TIMEOUT, metadata=platform),
                grpc.StatusCode.INVALID_ARGUMENT, field="request_id", what="request_id reused with another body")

    # OpenAccount: opened 120 days ago, 6 monthly instalments of 600.00 CNY, the first due 90
    # days ago (UTC dates), i.e. due -90, -60, -30, 0, +30, +60 days.
    today = utc_today()
    dues = [today + datetime.timedelta(days=-90 + 30 * i) for i in range(6)]
    instalment_minor = 60000
    open_request = a.OpenAccountRequest(
        request_id=request_id(),
        debtor_id=debtor.id,
        external_id=fresh("acc"),
        lender_id="lender-1",
        product=a.PRODUCT_TYPE_INSTALMENT_LOAN,
        product_name="分期贷",
        principal=cny(pb, 300000),
        opened_date=pb_date(pb, today - datetime.timedelta(days=120)),
        instalments=[a.OpeningInstalment(due_date=pb_date(pb, due), amount_due=cny(pb, instalment_minor))
                     for due in dues])
    local_before = shanghai_today()
    account = stub.OpenAccount(open_request, timeout=RPC_TIMEOUT, metadata=platform)
    local_after = shanghai_today()
    expect_id(account.id, "acc", "account.id")
    expect(account.debtor_id == debtor.id, f"account.debtor_id {account.debtor_id!r}")
    expect(account.version == 1, f"account.version {account.version}")

    # Delinquency as of the debtor-local (Asia/Shanghai) date the server used: instalments due
    # before it are overdue; days past due count from the oldest unpaid one.
    as_of = py_date(account.as_of_date, "account.as_of_date")
    expect(as_of in (local_before, local_after),
           f"account.as_of_date {as_of}, expected today in Asia/Shanghai ({local_after})")
    overdue_dues = [due for due in dues if due < as_of]
    expected_dpd = (as_of - dues[0]).days
    expected_overdue = instalment_minor * len(overdue_dues)
    expect(89 <= account.days_past_due <= 91 and account.days_past_due == expected_dpd,
           f"account.days_past_due {account.days_past_due}, expected {expected_dpd} as of {as_of}")
    expect(account.overdue_amount.amount_minor == expected_overdue and account.overdue_amount.currency_code == "CNY",
           f"account.overdue_amount {account.overdue_amount.amount_minor} {account.overdue_amount.currency_code!r}, "
           f"expected {expected_overdue} 'CNY' ({len(overdue_dues)} instalments due before {as_of})")
    expect(account.outstanding_amount.amount_minor == instalment_minor * len(dues),
           f"account.outstanding_amount {account.outstanding_amount.amount_minor}, expected {instalment_minor * len(dues)}")
    oldest_unpaid = py_date(account.oldest_unpaid_due_date, "account.oldest_unpaid_due_date")
    expect(oldest_unpaid == dues[0], f"account.oldest_unpaid_due_date {oldest_unpaid}, expected {dues[0]}")
    expect(account.stage == a.STAGE_REMOTE, f"account.stage {a.Stage.Name(account.stage)}, expected STAGE_REMOTE")
    expected_bucket = bucket_for(pb, account.days_past_due)
    expect(account.bucket == expected_bucket,
           f"account.bucket {a.Bucket.Name(account.bucket)}, expected {a.Bucket.Name(expected_bucket)} "
           f"for days_past_due {account.days_past_due}")

    # GetAccount.
    get = a.GetAccountRequest(account_id=account.id)
    read = stub.GetAccount(get, timeout=RPC_TIMEOUT, metadata=platform)
    expect(read.id == account.id, f"GetAccount returned id {read.id!r}, expected {account.id!r}")
    expect(read.days_past_due == account.days_past_due,
           f"GetAccount days_past_due {read.days_past_due}, OpenAccount said {account.days_past_due}")

    # The account is assigned to no agency: an agency manager must not learn it exists.
    expect_code(lambda: stub.GetAccount(get, timeout=RPC_TIMEOUT, metadata=ctx.auth("agency_manager")),
                grpc.StatusCode.NOT_FOUND, what="GetAccount by an agency manager of another agency")


def check_accounts_debtor_corrections(ctx):
    """A wrong address found at the door, corrected: a WRONG_ADDRESS visit (as visits delivers
    it) makes the debtor's address unverified, naming the visit; UpdateDebtor (update_mask
    address and phone, with a reason) clears it, answers masked, keeps the fields it was not
    asked to change and replays idempotently; a field it cannot change, a bad phone, a missing
    reason and a stale expected_version are refused, and only the platform may call it;
    ListDebtorChanges (compliance) shows both changes with actor, fields, reason and request
    id, and no personal value."""
    pb = ctx.pb
    a = pb.accounts
    stub = ctx.accounts()
    platform = ctx.auth("platform")
    debtor = stub.CreateDebtor(create_debtor_request(pb), timeout=RPC_TIMEOUT, metadata=platform)
    account = stub.OpenAccount(open_account_request(pb, debtor.id), timeout=RPC_TIMEOUT, metadata=platform)

    visit_id, visited_ms = report_wrong_address(ctx, account.id)
    found = stub.GetDebtor(a.GetDebtorRequest(debtor_id=debtor.id), timeout=RPC_TIMEOUT, metadata=platform)
    expect(found.address_unverified, "address_unverified is false after a WRONG_ADDRESS visit")
    finding = found.wrong_address_finding
    expect(finding.visit_id == visit_id and finding.account_id == account.id and finding.visited_ms == visited_ms,
           f"wrong_address_finding {finding}")
    expect(found.version == debtor.version + 1, f"debtor.version {found.version}, expected {debtor.version + 1}")

    corrected_address = pb.types.Address(text="上海市浦东新区张杨路500号 3楼", region_code=REGION, postal_code="200122",
                                         location=pb.types.GeoPoint(latitude=31.2280, longitude=121.5150))
    update = a.UpdateDebtorRequest(
        request_id=request_id(), debtor_id=debtor.id, expected_version=found.version,
        debtor=a.Debtor(full_name="not in the mask", address=corrected_address, phone="13912345670"),
        update_mask=["address", "phone"], reason="interop: address confirmed by the debtor, ticket 5521")
    corrected = stub.UpdateDebtor(update, timeout=RPC_TIMEOUT, metadata=platform)
    expect(not corrected.address_unverified and not corrected.HasField("wrong_address_finding"),
           f"the correction left the address unverified: {corrected.wrong_address_finding}")
    expect(corrected.version == found.version + 1, f"debtor.version {corrected.version}")
    expect(corrected.address == corrected_address, f"debtor.address {corrected.address}")
    expect(corrected.full_name == debtor.full_name, f"full_name changed to {corrected.full_name!r} (not in update_mask)")
    expect(corrected.personal_data_masked and corrected.phone == "139****5670", f"debtor.phone {corrected.phone!r}")
    expect(stub.UpdateDebtor(update, timeout=RPC_TIMEOUT, metadata=platform) == corrected, "replayed UpdateDebtor differs")

    def refused(mask, new, reason="interop", expected_version=0, role="platform"):
        request = a.UpdateDebtorRequest(request_id=request_id(), debtor_id=debtor.id, expected_version=expected_version,
                                        debtor=new, update_mask=mask, reason=reason)
        return lambda: stub.UpdateDebtor(request, timeout=RPC_TIMEOUT, metadata=ctx.auth(role))
    expect_code(refused(["national_id"], a.Debtor(national_id="11010519491231002X")), grpc.StatusCode.INVALID_ARGUMENT,
                field="update_mask[0]", what="national_id in update_mask")
    expect_code(refused(["phone"], a.Debtor(phone="123")), grpc.StatusCode.INVALID_ARGUMENT, field="debtor.phone")
    expect_code(refused(["time_zone"], a.Debtor(time_zone="Asia/Urumqi"), reason=""), grpc.StatusCode.INVALID_ARGUMENT,
                field="reason")
    expect_code(refused(["time_zone"], a.Debtor(time_zone="Asia/Urumqi"), expected_version=found.version),
                grpc.StatusCode.ABORTED, what="a stale expected_version")
    for role in ("compliance", "agency_manager", "service"):
        expect_code(refused(["time_zone"], a.Debtor(time_zone="Asia/Urumqi"), role=role), grpc.StatusCode.PERMISSION_DENIED,
                    what=f"UpdateDebtor by {role}")

    trail = stub.ListDebtorChanges(a.ListDebtorChangesRequest(debtor_id=debtor.id), timeout=RPC_TIMEOUT,
                                   metadata=ctx.auth("compliance"))
    changes = list(trail.changes)
    expect([c.kind for c in changes] == [a.DEBTOR_CHANGE_KIND_ADDRESS_FOUND_WRONG, a.DEBTOR_CHANGE_KIND_UPDATED],
           f"trail kinds {[a.DebtorChangeKind.Name(c.kind) for c in changes]}")
    wrong, fix = changes
    expect(wrong.actor.role == pb.types.ROLE_SERVICE and list(wrong.fields) == ["address_unverified"]
           and wrong.visit_id == visit_id and visit_id in wrong.reason and wrong.request_id == f"{visit_id}.contact",
           f"the wrong-address entry {wrong}")
    expect(fix.actor.role == pb.types.ROLE_PLATFORM and list(fix.fields) == ["address", "phone", "address_unverified"]
           and fix.reason == update.reason and fix.request_id == update.request_id and fix.debtor_version == corrected.version,
           f"the correction entry {fix}")
    expect([c.sequence for c in changes] == [1, 2], f"sequences {[c.sequence for c in changes]}")
    expect(b"13912345670" not in trail.SerializeToString() and "张杨路".encode() not in trail.SerializeToString(),
           "the trail carries a personal value")
    expect_code(lambda: stub.ListDebtorChanges(a.ListDebtorChangesRequest(debtor_id=debtor.id), timeout=RPC_TIMEOUT,
                                               metadata=ctx.auth("agency_manager")),
                grpc.StatusCode.PERMISSION_DENIED, what="ListDebtorChanges by an agency manager")
    expect_code(lambda: stub.ListDebtorChanges(a.ListDebtorChangesRequest(debtor_id=unknown_id("dbt")), timeout=RPC_TIMEOUT,
                                               metadata=platform),
                grpc.StatusCode.NOT_FOUND, what="ListDebtorChanges of an unknown debtor")


def check_accounts_watch_events(ctx):
    """WatchEvents from a stock client: the events of a new account arrive as CloudEvents with
    the timeline event as data (binary and proto3 JSON); a second stream resumed after a cursor
    starts exactly after it; a malformed cursor is INVALID_ARGUMENT, one beyond the log
    OUT_OF_RANGE, an agency manager is refused."""
    pb = ctx.pb
    a = pb.accounts
    stub = ctx.accounts()
    platform = ctx.auth("platform")
    debtor = stub.CreateDebtor(create_debtor_request(pb), timeout=RPC_TIMEOUT, metadata=platform)
    account = stub.OpenAccount(open_account_request(pb, debtor.id), timeout=RPC_TIMEOUT, metadata=platform)
    subject = f"accounts/{account.id}"
    stream = stub.WatchEvents(pb.types.WatchEventsRequest(types=["doorstep.accounts.account.*"]), timeout=60, metadata=platform)
    mine = []
    for event in stream:
        if event.subject == subject:
            mine.append(event)
        if mine and mine[-1].type == "doorstep.accounts.account.opened":
            break
    stream.cancel()
    opened = mine[-1]
    expect(opened.spec_version == "1.0" and opened.source == "/doorstep/accounts" and opened.id.startswith("evt_"),
           f"attributes {opened}")
    expect(opened.data_schema == "doorstep.accounts.v1.TimelineEvent" and opened.data_content_type == "application/json",
           f"data attributes {opened}")
    timeline_event = a.TimelineEvent.FromString(opened.data)
    expect(timeline_event.account_id == account.id and timeline_event.id == opened.id, f"data {timeline_event}")
    expect(json.loads(opened.data_json).get("accountId") == account.id, f"data_json {opened.data_json[:200]}")
    expect(opened.time.endswith("Z") and opened.time_ms > 0, f"time {opened.time}")
    # Resumed after the opening event: the next of this account's events is the next in its timeline.
    # At a time inside the contact hours whatever the hour of the run (an attempt a minute ago
    # is refused from 22:00 to 08:00 in Shanghai).
    stub.RecordContactAttempt(a.RecordContactAttemptRequest(
        request_id=f"interop-watch-{account.id}", account_id=account.id, channel=pb.types.CONTACT_CHANNEL_SMS,
        outcome=a.CONTACT_OUTCOME_SMS_UNDELIVERED, attempted_ms=last_shanghai_noon_ms()),
        timeout=RPC_TIMEOUT, metadata=platform)
    resumed = stub.WatchEvents(pb.types.WatchEventsRequest(after_cursor=opened.cursor), timeout=60, metadata=platform)
    following = []
    for event in resumed:
        expect(int(event.cursor) > int(opened.cursor), f"cursor {event.cursor} not after {opened.cursor}")
        if event.subject == subject:
            following.append(event)
        if following and following[-1].type == "doorstep.accounts.account.contact_attempt_recorded":
            break
    resumed.cancel()
    timeline = stub.GetAccountTimeline(a.GetAccountTimelineRequest(account_id=account.id, page_size=100),
                                       timeout=RPC_TIMEOUT, metadata=platform).events
    after_opening = [e.id for e in timeline if e.sequence > timeline_event.sequence]
    expect([e.id for e in following] == after_opening, f"resumed {[e.type for e in following]} vs timeline {after_opening}")
    for request, code in ((pb.types.WatchEventsRequest(after_cursor="not-a-cursor"), grpc.StatusCode.INVALID_ARGUMENT),
                          (pb.types.WatchEventsRequest(after_cursor="999999999999"), grpc.StatusCode.OUT_OF_RANGE),
                          (pb.types.WatchEventsRequest(types=["Not A Type"]), grpc.StatusCode.INVALID_ARGUMENT)):
        expect_code(lambda: list(stub.WatchEvents(request, timeout=RPC_TIMEOUT, metadata=platform)), code)
    expect_code(lambda: list(stub.WatchEvents(pb.types.WatchEventsRequest(), timeout=RPC_TIMEOUT, metadata=ctx.auth("agency_manager"))),
                grpc.StatusCode.PERMISSION_DENIED, what="WatchEvents by an agency manager")


def check_accounts_personal_data_access(ctx):
    """The audit of unmasked personal data from a stock client: two revealing GetDebtor reads of
    a new debtor are listed (compliance only) with reader, fields and reason, oldest first and
    one per page; a masked read is not; a bad period names end_ms; other roles are refused."""
    pb = ctx.pb
    a = pb.accounts
    stub = ctx.accounts()
    platform, compliance = ctx.auth("platform"), ctx.auth("compliance")
    debtor = stub.CreateDebtor(create_debtor_request(pb), timeout=RPC_TIMEOUT, metadata=platform)
    reasons = ["interop: hotline caller verified", "interop: complaint review"]
    for reason, metadata in zip(reasons, (platform, compliance)):
        stub.GetDebtor(a.GetDebtorRequest(debtor_id=debtor.id, reveal_personal_data=True, access_reason=reason),
                       timeout=RPC_TIMEOUT, metadata=metadata)
    stub.GetDebtor(a.GetDebtorRequest(debtor_id=debtor.id), timeout=RPC_TIMEOUT, metadata=platform)
    seen, token = [], ""
    while True:
        page = stub.ListPersonalDataAccess(a.ListPersonalDataAccessRequest(debtor_id=debtor.id, page_size=1, page_token=token),
                                           timeout=RPC_TIMEOUT, metadata=compliance)
        seen += list(page.accesses)
        token = page.next_page_token
        if not token:
            break
    expect([x.reason for x in seen] == reasons, f"audited reasons {[x.reason for x in seen]}")
    expect([x.actor.role for x in seen] == [pb.types.ROLE_PLATFORM, pb.types.ROLE_COMPLIANCE], f"actors {[x.actor for x in seen]}")
    expect(all(x.debtor_id == debtor.id and "phone" in x.fields and x.accessed_ms > 0 for x in seen), f"records {seen}")
    expect(seen[0].sequence < seen[1].sequence, "not oldest first")
    expect_code(lambda: stub.ListPersonalDataAccess(a.ListPersonalDataAccessRequest(start_ms=2_000_000_000_000, end_ms=1_900_000_000_000),
                                                    timeout=RPC_TIMEOUT, metadata=compliance),
                grpc.StatusCode.INVALID_ARGUMENT, field="end_ms")
    for role in ("platform", "agency_manager", "service"):
        expect_code(lambda: stub.ListPersonalDataAccess(a.ListPersonalDataAccessRequest(debtor_id=debtor.id), timeout=RPC_TIMEOUT,
                                                        metadata=ctx.auth(role)),
                    grpc.StatusCode.PERMISSION_DENIED, what=f"ListPersonalDataAccess by {role}")

    # The subject-access export (server streaming): the debtor unmasked first, the export's own
    # log entry last.
    export = a.ExportDebtorRecordRequest(debtor_id=debtor.id, access_reason="interop: subject access request")
    parts = list(stub.ExportDebtorRecord(export, timeout=RPC_TIMEOUT, metadata=compliance))
    kinds = [part.WhichOneof("part") for part in parts]
    expect(kinds[0] == "debtor" and not parts[0].debtor.personal_data_masked and "*" not in parts[0].debtor.phone,
           f"first part {kinds[0]}: {parts[0]}")
    expect(kinds[-1] == "personal_data_access" and list(parts[-1].personal_data_access.fields) == ["export"]
           and parts[-1].personal_data_access.reason == export.access_reason, f"last part {parts[-1]}")
    expect(kinds.count("personal_data_access") == 3, f"parts {kinds}")
    expect_code(lambda: list(stub.ExportDebtorRecord(a.ExportDebtorRecordRequest(debtor_id=debtor.id), timeout=RPC_TIMEOUT,
                                                     metadata=compliance)),
                grpc.StatusCode.INVALID_ARGUMENT, field="access_reason")
    expect_code(lambda: list(stub.ExportDebtorRecord(export, timeout=RPC_TIMEOUT, metadata=platform)),
                grpc.StatusCode.PERMISSION_DENIED, what="ExportDebtorRecord by the platform")


def check_accounts_bulk_import(ctx):
    """ImportAccounts and ImportPayments as bidirectional streams from a stock client: one
    ImportResult per record in order (CREATED, REJECTED with the record's field path in the
    Refusal), the same records again UNCHANGED with the same ids, a payment CREATED then
    UNCHANGED; only platform may import (PERMISSION_DENIED for service, UNAUTHENTICATED
    without a token); a record that is not protobuf fails the stream with INVALID_ARGUMENT."""
    pb = ctx.pb
    a = pb.accounts
    stub = ctx.accounts()
    platform = ctx.auth("platform")
    today = utc_today()
    run = fresh("imp")

    def record(sequence, national_id="11010519491231002X"):
        debtor = create_debtor_request(pb, national_id=national_id).debtor
        debtor.external_id = f"{run}-dbt-{sequence}"
        return a.ImportAccountsRequest(
            sequence=sequence, import_id=f"interop {run}", debtor=debtor,
            account=a.ImportedAccount(
                external_id=f"{run}-loan-{sequence}", lender_id="lender-1", product=a.PRODUCT_TYPE_CASH_LOAN,
                principal=cny(pb, 300000), opened_date=pb_date(pb, today - datetime.timedelta(days=75)),
                instalments=[a.OpeningInstalment(due_date=pb_date(pb, today + datetime.timedelta(days=-45 + 30 * i)),
                                                 amount_due=cny(pb, 100000)) for i in range(3)]))

    records = [record(1), record(2, national_id="110105194912310021"), record(3)]
    first = list(stub.ImportAccounts(iter(records), timeout=RPC_TIMEOUT, metadata=platform))
    expect([r.sequence for r in first] == [1, 2, 3], f"result sequences {[r.sequence for r in first]}")
    expect([r.outcome for r in first] == [a.IMPORT_OUTCOME_CREATED, a.IMPORT_OUTCOME_REJECTED, a.IMPORT_OUTCOME_CREATED],
           f"outcomes {[a.ImportOutcome.Name(r.outcome) for r in first]}")
    expect(first[1].code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and first[1].message.startswith("debtor.national_id")
           and [v.field for v in first[1].refusal.violations] == ["debtor.national_id"], f"the rejection {first[1]}")
    expect_id(first[0].account_id, "acc", "imported account")
    expect_id(first[0].debtor_id, "dbt", "imported debtor")
    account = stub.GetAccount(a.GetAccountRequest(account_id=first[2].account_id), timeout=RPC_TIMEOUT, metadata=platform)
    expect(account.external_id == f"{run}-loan-3" and account.stage == a.STAGE_REMOTE, f"imported account {account.external_id}")
    again = list(stub.ImportAccounts(iter([records[0], records[2]]), timeout=RPC_TIMEOUT, metadata=platform))
    expect([r.outcome for r in again] == [a.IMPORT_OUTCOME_UNCHANGED] * 2
           and [r.account_id for r in again] == [first[0].account_id, first[2].account_id], f"re-import {again}")

    received = int(time.time() * 1000) - 3_600_000
    payment = a.ImportPaymentsRequest(sequence=1, import_id=f"interop {run}", lender_id="lender-1",
                                      account_external_id=f"{run}-loan-1", external_id=f"{run}-txn-1",
                                      amount=cny(pb, 50000), received_ms=received)
    paid = list(stub.ImportPayments(iter([payment]), timeout=RPC_TIMEOUT, metadata=platform))
    expect([r.outcome for r in paid] == [a.IMPORT_OUTCOME_CREATED] and paid[0].payment_id.startswith("pay_"), f"payment {paid}")
    paid = list(stub.ImportPayments(iter([payment]), timeout=RPC_TIMEOUT, metadata=platform))
    expect([r.outcome for r in paid] == [a.IMPORT_OUTCOME_UNCHANGED], f"payment again {paid}")

    expect_code(lambda: list(stub.ImportAccounts(iter([record(9)]), timeout=RPC_TIMEOUT, metadata=ctx.auth("service"))),
                grpc.StatusCode.PERMISSION_DENIED, what="ImportAccounts by service")
    expect_code(lambda: list(stub.ImportPayments(iter([payment]), timeout=RPC_TIMEOUT)),
                grpc.StatusCode.UNAUTHENTICATED, what="ImportPayments without a token")
    raw = ctx.channel("accounts").stream_stream("/doorstep.accounts.v1.Accounts/ImportAccounts",
                                                request_serializer=lambda b: b, response_deserializer=lambda b: b)
    expect_code(lambda: list(raw(iter([b"\x0a\xff"]), timeout=RPC_TIMEOUT, metadata=platform)),
                grpc.StatusCode.INVALID_ARGUMENT, what="ImportAccounts with a record that is not protobuf")


# ---------------------------------------------------------------------------
# Scheduling
# ---------------------------------------------------------------------------

def check_scheduling_unauthenticated(ctx):
    """RegisterAgency without a token and with an unverifiable one: UNAUTHENTICATED."""
    stub = ctx.scheduling()
    request = register_agency_request(ctx.pb)
    expect_code(lambda: stub.RegisterAgency(request, timeout=RPC_TIMEOUT),
                grpc.StatusCode.UNAUTHENTICATED, what="without a token")
    expect_code(lambda: stub.RegisterAgency(request, timeout=RPC_TIMEOUT,
                                            metadata=[("authorization", "Bearer garbage")]),
                grpc.StatusCode.UNAUTHENTICATED, what="with 'Bearer garbage'")


def check_scheduling_permission_denied(ctx):
    """RegisterAgency is platform-only; a collector token gets PERMISSION_DENIED."""
    request = register_agency_request(ctx.pb)
    expect_code(lambda: ctx.scheduling().RegisterAgency(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("collector")),
                grpc.StatusCode.PERMISSION_DENIED)


def check_scheduling_invalid_argument(ctx):
    """RegisterAgency with an empty display_name: INVALID_ARGUMENT naming agency.display_name."""
    request = register_agency_request(ctx.pb, display_name="")
    expect_code(lambda: ctx.scheduling().RegisterAgency(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("platform")),
                grpc.StatusCode.INVALID_ARGUMENT, field="agency.display_name")


def check_scheduling_not_found(ctx):
    """RegisterCollector for a well-formed, unknown agency_id: NOT_FOUND."""
    request = register_collector_request(ctx.pb, unknown_id("agy"))
    expect_code(lambda: ctx.scheduling().RegisterCollector(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("platform")),
                grpc.StatusCode.NOT_FOUND)


def check_scheduling_register_agency_collector(ctx):
    """RegisterAgency (ACTIVE, idempotent replay, duplicate licence refused), then
    RegisterCollector for it (ACTIVE)."""
    pb = ctx.pb
    s = pb.scheduling
    stub = ctx.scheduling()
    platform = ctx.auth("platform")

    register = register_agency_request(pb)
    agency = stub.RegisterAgency(register, timeout=RPC_TIMEOUT, metadata=platform)
    expect_id(agency.id, "agy", "agency.id")
    expect(agency.status == s.AGENCY_STATUS_ACTIVE,
           f"agency.status {s.AgencyStatus.Name(agency.status)}, expected AGENCY_STATUS_ACTIVE")
    expect(agency.version == 1, f"agency.version {agency.version}")
    expect(agency.licence_number == register.agency.licence_number, f"agency.licence_number {agency.licence_number!r}")
    expect(list(agency.regions_served) == [REGION], f"agency.regions_served {list(agency.regions_served)}")

    replay = stub.RegisterAgency(register, timeout=RPC_TIMEOUT, metadata=platform)
    expect(replay.id == agency.id, f"replayed RegisterAgency returned id {replay.id!r}, first {agency.id!r}")
    expect(replay == agency, "replayed RegisterAgency returned a different response")

    duplicate = s.RegisterAgencyRequest()
    duplicate.CopyFrom(register)
    duplicate.request_id = request_id()
    duplicate.agency.display_name = register.agency.display_name + " 二"
    expect_code(lambda: stub.RegisterAgency(duplicate, timeout=RPC_TIMEOUT, metadata=platform),
                grpc.StatusCode.ALREADY_EXISTS, what="another agency with the same licence_number")

    collector_request = register_collector_request(pb, agency.id)
    collector = stub.RegisterCollector(collector_request, timeout=RPC_TIMEOUT, metadata=platform)
    expect_id(collector.id, "col", "collector.id")
    expect(collector.agency_id == agency.id, f"collector.agency_id {collector.agency_id!r}, expected {agency.id!r}")
    expect(collector.status == s.COLLECTOR_STATUS_ACTIVE,
           f"collector.status {s.CollectorStatus.Name(collector.status)}, expected COLLECTOR_STATUS_ACTIVE")
    expect(collector.version == 1, f"collector.version {collector.version}")


def check_scheduling_agency_lifecycle(ctx):
    """An agency and its collector over their whole life, through every registry RPC:
    GetAgency and ListAgencies (every page once), ListExpiring (a licence running out in 10
    days; within_days 0 refused), UpdateAgency (the licence renewed through update_mask, no
    longer expiring; a field it cannot change and a stale expected_version refused),
    RecordInspection (PASSED moves last_inspection_date), GetCollector, ListCollectors,
    UpdateCollector (capacity changed; a bad shift refused naming collector.shift_end),
    SuspendAgency (suspending twice: `agency-state`), ReinstateAgency, ExitAgency (final);
    another agency's manager sees none of it and compliance may not write."""
    pb = ctx.pb
    s = pb.scheduling
    stub = ctx.scheduling()
    platform = ctx.auth("platform")

    register = register_agency_request(pb)
    licence_expiry = shanghai_today() + datetime.timedelta(days=10)
    register.agency.licence_expiry_date.CopyFrom(pb_date(pb, licence_expiry))
    agency = stub.RegisterAgency(register, timeout=RPC_TIMEOUT, metadata=platform)
    collector = stub.RegisterCollector(register_collector_request(pb, agency.id), timeout=RPC_TIMEOUT, metadata=platform)

    # GetAgency and ListAgencies.
    read = stub.GetAgency(s.GetAgencyRequest(agency_id=agency.id), timeout=RPC_TIMEOUT, metadata=platform)
    expect(read == agency, "GetAgency returned another agency than RegisterAgency")
    listed, token = [], ""
    while True:
        page = stub.ListAgencies(s.ListAgenciesRequest(page_size=2, page_token=token, status=s.AGENCY_STATUS_ACTIVE,
                                                       region_code=REGION), timeout=RPC_TIMEOUT, metadata=platform)
        listed += [a.id for a in page.agencies]
        token = page.next_page_token
        if not token:
            break
    expect(agency.id in listed, f"ListAgencies did not list {agency.id}")
    expect(len(listed) == len(set(listed)), f"ListAgencies listed an agency twice: {listed}")

    # ListExpiring: the licence runs out in 10 days.
    expiring = stub.ListExpiring(s.ListExpiringRequest(within_days=30, agency_id=agency.id), timeout=RPC_TIMEOUT, metadata=platform)
    licences = [item for item in expiring.items if item.kind == s.EXPIRY_KIND_AGENCY_LICENCE]
    expect(len(licences) == 1 and licences[0].resource_id == agency.id, f"ListExpiring items {list(expiring.items)}")
    as_of = py_date(expiring.as_of_date, "ListExpiringResponse.as_of_date")
    expect(licences[0].rule_id == "agency-licence", f"rule_id {licences[0].rule_id!r}")
    expect(licences[0].days_left == (licence_expiry - as_of).days,
           f"days_left {licences[0].days_left}, expected {(licence_expiry - as_of).days} from {as_of}")
    expect(expiring.time_zone == "Asia/Shanghai", f"time_zone {expiring.time_zone!r}")
    expect_code(lambda: stub.ListExpiring(s.ListExpiringRequest(within_days=0), timeout=RPC_TIMEOUT, metadata=platform),
                grpc.StatusCode.INVALID_ARGUMENT, field="within_days")

    # UpdateAgency: the licence renewed (only the fields in update_mask change).
    new_licence = fresh("lic")
    update = s.UpdateAgencyRequest(
        request_id=request_id(), agency_id=agency.id, expected_version=1,
        agency=s.Agency(display_name="not in the mask", licence_number=new_licence,
                        licence_expiry_date=pb_date(pb, utc_today() + datetime.timedelta(days=730)),
                        contact=s.ContactDetails(name="王经理", phone="+86 21 5888 0000")),
        update_mask=["licence_number", "licence_expiry_date", "contact"])
    renewed = stub.UpdateAgency(update, timeout=RPC_TIMEOUT, metadata=platform)
    expect(renewed.version == 2 and renewed.licence_number == new_licence, f"renewed {renewed}")
    expect(renewed.display_name == agency.display_name, f"display_name changed to {renewed.display_name!r}")
    expect(renewed.contact.phone == "+86 21 5888 0000", f"contact {renewed.contact}")
    expect(stub.UpdateAgency(update, timeout=RPC_TIMEOUT, metadata=platform) == renewed, "replayed UpdateAgency differs")
    expiring = stub.ListExpiring(s.ListExpiringRequest(within_days=30, agency_id=agency.id), timeout=RPC_TIMEOUT, metadata=platform)
    expect(not [i for i in expiring.items if i.kind == s.EXPIRY_KIND_AGENCY_LICENCE], f"still expiring: {list(expiring.items)}")
    bad = s.UpdateAgencyRequest(request_id=request_id(), agency_id=agency.id, agency=s.Agency(), update_mask=["status"])
    expect_code(lambda: stub.UpdateAgency(bad, timeout=RPC_TIMEOUT, metadata=platform),
                grpc.StatusCode.INVALID_ARGUMENT, field="update_mask[0]")
    stale = s.UpdateAgencyRequest(request_id=request_id(), agency_id=agency.id, expected_version=1,
                                  agency=s.Agency(daily_visit_capacity=30), update_mask=["daily_visit_capacity"])
    expect_code(lambda: stub.UpdateAgency(stale, timeout=RPC_TIMEOUT, metadata=platform), grpc.StatusCode.ABORTED)

    # RecordInspection: passed today.
    inspected = stub.RecordInspection(s.RecordInspectionRequest(
        request_id=request_id(), agency_id=agency.id, inspection_date=pb_date(pb, utc_today()),
        result=s.INSPECTION_RESULT_PASSED, inspector="互操作检查组"), timeout=RPC_TIMEOUT, metadata=platform)
    expect(py_date(inspected.last_inspection_date, "last_inspection_date") == utc_today(),
           f"last_inspection_date {inspected.last_inspection_date}")
    expect(len(inspected.inspections) == 1 and inspected.inspections[0].result == s.INSPECTION_RESULT_PASSED,
           f"inspections {list(inspected.inspections)}")

    # The collector: read, listed, updated.
    got = stub.GetCollector(s.GetCollectorRequest(collector_id=collector.id), timeout=RPC_TIMEOUT, metadata=platform)
    expect(got == collector, "GetCollector returned another collector than RegisterCollector")
    ours = stub.ListCollectors(s.ListCollectorsRequest(agency_id=agency.id), timeout=RPC_TIMEOUT, metadata=platform)
    expect([c.id for c in ours.collectors] == [collector.id], f"ListCollectors {[c.id for c in ours.collectors]}")
    changed = stub.UpdateCollector(s.UpdateCollectorRequest(
        request_id=request_id(), collector_id=collector.id, expected_version=1, collector=s.Collector(daily_capacity=5),
        update_mask=["daily_capacity"]), timeout=RPC_TIMEOUT, metadata=platform)
    expect(changed.daily_capacity == 5 and changed.version == 2, f"UpdateCollector {changed}")
    bad_shift = s.UpdateCollectorRequest(request_id=request_id(), collector_id=collector.id,
                                         collector=s.Collector(shift_end=pb.types.TimeOfDay(hours=7)), update_mask=["shift_end"])
    expect_code(lambda: stub.UpdateCollector(bad_shift, timeout=RPC_TIMEOUT, metadata=platform),
                grpc.StatusCode.INVALID_ARGUMENT, field="collector.shift_end")

    # Status: suspended (once), reinstated, exited for good.
    suspended = stub.SuspendAgency(s.SuspendAgencyRequest(request_id=request_id(), agency_id=agency.id, reason="interop review"),
                                   timeout=RPC_TIMEOUT, metadata=platform)
    expect(suspended.status == s.AGENCY_STATUS_SUSPENDED and suspended.status_reason == "interop review", f"{suspended}")
    expect(suspended.status_changes[-1].appointments_cancelled == 0, f"{suspended.status_changes}")
    expect_code(lambda: stub.SuspendAgency(s.SuspendAgencyRequest(request_id=request_id(), agency_id=agency.id, reason="again"),
                                           timeout=RPC_TIMEOUT, metadata=platform),
                grpc.StatusCode.FAILED_PRECONDITION, field="agency-state")
    reinstated = stub.ReinstateAgency(s.ReinstateAgencyRequest(request_id=request_id(), agency_id=agency.id, reason="closed"),
                                      timeout=RPC_TIMEOUT, metadata=platform)
    expect(reinstated.status == s.AGENCY_STATUS_ACTIVE and not reinstated.status_reason, f"{reinstated}")
    exited = stub.ExitAgency(s.ExitAgencyRequest(request_id=request_id(), agency_id=agency.id, reason="contract ended"),
                             timeout=RPC_TIMEOUT, metadata=platform)
    expect(exited.status == s.AGENCY_STATUS_EXITED, f"{exited}")
    expect([c.status for c in exited.status_changes] ==
           [s.AGENCY_STATUS_SUSPENDED, s.AGENCY_STATUS_ACTIVE, s.AGENCY_STATUS_EXITED], f"{exited.status_changes}")
    expect_code(lambda: stub.ReinstateAgency(s.ReinstateAgencyRequest(request_id=request_id(), agency_id=agency.id, reason="back"),
                                             timeout=RPC_TIMEOUT, metadata=platform),
                grpc.StatusCode.FAILED_PRECONDITION, field="agency-state")

    # Roles: another agency's manager sees nothing of it; compliance reads but may not write.
    manager = ctx.auth("agency_manager")
    expect_code(lambda: stub.GetAgency(s.GetAgencyRequest(agency_id=agency.id), timeout=RPC_TIMEOUT, metadata=manager),
                grpc.StatusCode.NOT_FOUND, what="GetAgency by another agency's manager")
    theirs = stub.ListCollectors(s.ListCollectorsRequest(agency_id=agency.id), timeout=RPC_TIMEOUT, metadata=manager)
    expect(not theirs.collectors, "ListCollectors showed another agency's collectors to a manager")
    compliance = ctx.auth("compliance")
    expect(stub.GetAgency(s.GetAgencyRequest(agency_id=agency.id), timeout=RPC_TIMEOUT, metadata=compliance) == exited,
           "GetAgency by compliance")
    expect_code(lambda: stub.SuspendAgency(s.SuspendAgencyRequest(request_id=request_id(), agency_id=agency.id, reason="x"),
                                           timeout=RPC_TIMEOUT, metadata=compliance),
                grpc.StatusCode.PERMISSION_DENIED, what="SuspendAgency by compliance")


def check_scheduling_wrong_address_refused(ctx):
    """Scheduling asks the accounts process about the debtor: CheckCompliance for an account whose
    debtor's address a visit found wrong reports `debtor-location` naming the visit; once
    UpdateDebtor corrects the coordinates it does not (the account is REMOTE, so
    `account-stage` stays either way)."""
    pb = ctx.pb
    a, s = pb.accounts, pb.scheduling
    platform = ctx.auth("platform")
    agency = ctx.scheduling().RegisterAgency(register_agency_request(pb), timeout=RPC_TIMEOUT, metadata=platform)
    crew = [ctx.scheduling().RegisterCollector(register_collector_request(pb, agency.id), timeout=RPC_TIMEOUT,
                                               metadata=platform).id for _ in range(2)]
    debtor = ctx.accounts().CreateDebtor(create_debtor_request(pb), timeout=RPC_TIMEOUT, metadata=platform)
    account = ctx.accounts().OpenAccount(open_account_request(pb, debtor.id), timeout=RPC_TIMEOUT, metadata=platform)
    visit_id, _ = report_wrong_address(ctx, account.id)
    # Three days ahead, 10:00-12:00 Shanghai: inside the collectors' 09:00-18:00 shift.
    day = 86_400_000
    start = (int(time.time() * 1000) // day + 3) * day + 2 * 3_600_000
    check = s.CheckComplianceRequest(account_id=account.id, crew_collector_ids=crew, window_start_ms=start,
                                     window_end_ms=start + 2 * 3_600_000)

    def location_violations():
        response = ctx.scheduling().CheckCompliance(check, timeout=RPC_TIMEOUT, metadata=platform)
        return [v for v in response.violations if v.rule_id == "debtor-location"], [v.rule_id for v in response.violations]
    found, rules = location_violations()
    expect(len(found) == 1, f"violations {rules}, expected debtor-location among them")
    expect(visit_id in found[0].detail and "UpdateDebtor" in found[0].detail, f"debtor-location detail {found[0].detail!r}")
    expect(found[0].subject_id == account.id, f"subject_id {found[0].subject_id!r}")

    ctx.accounts().UpdateDebtor(a.UpdateDebtorRequest(
        request_id=request_id(), debtor_id=debtor.id,
        debtor=a.Debtor(address=pb.types.Address(location=pb.types.GeoPoint(latitude=31.2281, longitude=121.5151))),
        update_mask=["address.location"], reason="interop: the pin was on the neighbouring block"),
        timeout=RPC_TIMEOUT, metadata=platform)
    found, rules = location_violations()
    expect(not found and "account-stage" in rules, f"violations after the correction {rules}")


# ---------------------------------------------------------------------------
# Placements (accounts PlaceAccounts / RecallAccounts, scheduling PlaceRegion)
# ---------------------------------------------------------------------------

# The agency of the agency_manager token (tests/ServiceProcessTests mint it for this id).
MANAGER_AGENCY = "agy_01J" + "0" * 23


def refusal_of(pb, error):
    """The Refusal in a FAILED_PRECONDITION's grpc-status-details-bin trailer."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = pb.types.RpcStatus.FromString(value)
            expect(status.details and status.details[0].type_url == "type.googleapis.com/doorstep.type.v1.Refusal",
                   f"status details {status}")
            return pb.types.Refusal.FromString(status.details[0].value)
    raise Failed(f"no grpc-status-details-bin on {error.code().name}: {error.details()!r}")


def field_account(ctx, region):
    """A debtor of `region` and an account brought to FIELD: 45 days past due and three
    undelivered texts sent at noon Shanghai time (inside contact hours whenever this runs),
    then EvaluateStages for it (role service)."""
    pb = ctx.pb
    a = pb.accounts
    platform, service = ctx.auth("platform"), ctx.auth("service")
    create = create_debtor_request(pb)
    create.debtor.address.region_code = region
    debtor = ctx.accounts().CreateDebtor(create, timeout=RPC_TIMEOUT, metadata=platform)
    account = ctx.accounts().OpenAccount(open_account_request(pb, debtor.id), timeout=RPC_TIMEOUT, metadata=platform)
    noon_ms = last_shanghai_noon_ms()
    for minute in range(3):
        ctx.accounts().RecordContactAttempt(a.RecordContactAttemptRequest(
            request_id=request_id(), account_id=account.id, channel=pb.types.CONTACT_CHANNEL_SMS,
            outcome=a.CONTACT_OUTCOME_SMS_UNDELIVERED, attempted_ms=noon_ms + minute * 60_000),
            timeout=RPC_TIMEOUT, metadata=service)
    ctx.accounts().EvaluateStages(a.EvaluateStagesRequest(request_id=request_id(), account_ids=[account.id]),
                                  timeout=RPC_TIMEOUT, metadata=service)
    read = ctx.accounts().GetAccount(a.GetAccountRequest(account_id=account.id), timeout=RPC_TIMEOUT, metadata=platform)
    expect(read.stage == a.STAGE_FIELD, f"stage {a.Stage.Name(read.stage)}: {read.stage_reason}")
    return read


def check_accounts_placements(ctx):
    """PlaceAccounts and RecallAccounts from a stock client: placed with the agency manager's
    agency (idempotent replay; a reused request_id with another request refused naming
    request_id), the manager then reads the account; placing it again is FAILED_PRECONDITION
    `placement-active` with a Refusal naming accounts[0].account_id; bad input names its
    field; a stale expected_version is ABORTED, an unknown account NOT_FOUND; agency managers
    may not place; compliance recalls with a reason, after which the manager gets NOT_FOUND,
    recalling again is `placement-missing`, and the timeline shows ACCOUNT_PLACED and
    ACCOUNT_RECALLED."""
    pb = ctx.pb
    a = pb.accounts
    stub = ctx.accounts()
    platform = ctx.auth("platform")
    debtor = stub.CreateDebtor(create_debtor_request(pb), timeout=RPC_TIMEOUT, metadata=platform)
    account = stub.OpenAccount(open_account_request(pb, debtor.id), timeout=RPC_TIMEOUT, metadata=platform)
    end = pb_date(pb, shanghai_today() + datetime.timedelta(days=30))
    place = a.PlaceAccountsRequest(request_id=request_id(), agency_id=MANAGER_AGENCY, end_date=end,
                                   accounts=[a.PlacementTarget(account_id=account.id, expected_version=account.version)],
                                   reason="interop: Q2 field contract")
    placed = stub.PlaceAccounts(place, timeout=RPC_TIMEOUT, metadata=platform)
    expect(len(placed.placements) == 1, f"placements {placed.placements}")
    placement = placed.placements[0]
    expect_id(placement.id, "plc", "Placement.id")
    expect(placement.state == a.PLACEMENT_STATE_ACTIVE and placement.agency_id == MANAGER_AGENCY
           and placement.reason == place.reason and placement.end_date == end, f"placement {placement}")
    expect(stub.PlaceAccounts(place, timeout=RPC_TIMEOUT, metadata=platform) == placed, "replayed PlaceAccounts differs")
    reused = a.PlaceAccountsRequest()
    reused.CopyFrom(place)
    reused.reason = "another reason"
    expect_code(lambda: stub.PlaceAccounts(reused, timeout=RPC_TIMEOUT, metadata=platform), grpc.StatusCode.INVALID_ARGUMENT,
                field="request_id", what="a request_id reused for another request")
    manager = ctx.auth("agency_manager")
    seen = stub.GetAccount(a.GetAccountRequest(account_id=account.id), timeout=RPC_TIMEOUT, metadata=manager)
    expect(seen.assigned_agency_id == MANAGER_AGENCY and seen.placement == placement, f"as the manager reads it: {seen.placement}")

    def place_again(**changes):
        request = a.PlaceAccountsRequest(request_id=request_id(), agency_id=unknown_id("agy"), end_date=end,
                                         accounts=[a.PlacementTarget(account_id=account.id)], reason="interop: move")
        for key, value in changes.items():
            if key == "accounts":
                del request.accounts[:]
                request.accounts.extend(value)
            elif key == "end_date":
                request.end_date.CopyFrom(value)
            else:
                setattr(request, key, value)
        return lambda: stub.PlaceAccounts(request, timeout=RPC_TIMEOUT, metadata=platform)
    refused = expect_code(place_again(), grpc.StatusCode.FAILED_PRECONDITION, field="placement-active")
    violations = list(refusal_of(pb, refused).violations)
    expect([v.rule_id for v in violations] == ["placement-active"] and violations[0].field == "accounts[0].account_id"
           and violations[0].subject_id == account.id, f"violations {violations}")
    expect_code(place_again(end_date=pb_date(pb, utc_today() - datetime.timedelta(days=1))), grpc.StatusCode.INVALID_ARGUMENT,
                field="end_date")
    expect_code(place_again(accounts=[a.PlacementTarget(account_id=account.id)] * 2), grpc.StatusCode.INVALID_ARGUMENT,
                field="accounts[1].account_id")
    expect_code(place_again(accounts=[a.PlacementTarget(account_id=account.id, expected_version=1)]), grpc.StatusCode.ABORTED,
                what="a stale expected_version")
    expect_code(place_again(accounts=[a.PlacementTarget(account_id=unknown_id("acc"))]), grpc.StatusCode.NOT_FOUND)
    for role in ("agency_manager", "compliance", "collector"):
        expect_code(lambda: stub.PlaceAccounts(place, timeout=RPC_TIMEOUT, metadata=ctx.auth(role)),
                    grpc.StatusCode.PERMISSION_DENIED, what=f"PlaceAccounts by {role}")

    recall = a.RecallAccountsRequest(request_id=request_id(), accounts=[a.PlacementTarget(account_id=account.id)],
                                     agency_id=MANAGER_AGENCY, reason="interop: the agency handed it back")
    recalled = stub.RecallAccounts(recall, timeout=RPC_TIMEOUT, metadata=ctx.auth("compliance"))
    expect([p.state for p in recalled.placements] == [a.PLACEMENT_STATE_RECALLED]
           and recalled.placements[0].end_reason == recall.reason, f"recalled {recalled.placements}")
    expect(stub.RecallAccounts(recall, timeout=RPC_TIMEOUT, metadata=ctx.auth("compliance")) == recalled,
           "replayed RecallAccounts differs")
    expect_code(lambda: stub.GetAccount(a.GetAccountRequest(account_id=account.id), timeout=RPC_TIMEOUT, metadata=manager),
                grpc.StatusCode.NOT_FOUND, what="the manager reading a recalled account")
    again = a.RecallAccountsRequest(request_id=request_id(), accounts=[a.PlacementTarget(account_id=account.id)], reason="again")
    missing = expect_code(lambda: stub.RecallAccounts(again, timeout=RPC_TIMEOUT, metadata=platform),
                          grpc.StatusCode.FAILED_PRECONDITION, field="placement-missing")
    expect([v.rule_id for v in refusal_of(pb, missing).violations] == ["placement-missing"], "placement-missing refusal")
    expect_code(lambda: stub.RecallAccounts(a.RecallAccountsRequest(request_id=request_id(), reason="r"), timeout=RPC_TIMEOUT,
                                            metadata=platform), grpc.StatusCode.INVALID_ARGUMENT, field="agency_id")
    timeline = stub.GetAccountTimeline(a.GetAccountTimelineRequest(
        account_id=account.id, event_types=[a.TIMELINE_EVENT_TYPE_ACCOUNT_PLACED, a.TIMELINE_EVENT_TYPE_ACCOUNT_RECALLED]),
        timeout=RPC_TIMEOUT, metadata=platform)
    expect([e.event_type for e in timeline.events] == [a.TIMELINE_EVENT_TYPE_ACCOUNT_PLACED, a.TIMELINE_EVENT_TYPE_ACCOUNT_RECALLED]
           and timeline.events[1].placement.id == placement.id, f"timeline {list(timeline.events)}")


def check_scheduling_place_region(ctx):
    """PlaceRegion from a stock client over a region of its own: two FIELD accounts, one ACTIVE
    agency with placement_capacity 1 (set with UpdateAgency's mask): one account placed with
    the reason naming the rule, one left unplaced; the replay answers the same; bad input names
    its field; only the platform may call it. Then SuspendAgency recalls the placed account:
    the scheduling process's outbox delivers RecallAccounts to the accounts process."""
    pb = ctx.pb
    a, s = pb.accounts, pb.scheduling
    platform = ctx.auth("platform")
    region = "IOP" + uuid.uuid4().hex[:8].upper()
    accounts = [field_account(ctx, region) for _ in range(2)]
    register = register_agency_request(pb)
    del register.agency.regions_served[:]
    register.agency.regions_served.append(region)
    agency = ctx.scheduling().RegisterAgency(register, timeout=RPC_TIMEOUT, metadata=platform)
    agency = ctx.scheduling().UpdateAgency(s.UpdateAgencyRequest(
        request_id=request_id(), agency_id=agency.id, expected_version=agency.version, agency=s.Agency(placement_capacity=1),
        update_mask=["placement_capacity"]), timeout=RPC_TIMEOUT, metadata=platform)
    expect(agency.placement_capacity == 1, f"placement_capacity {agency.placement_capacity}")
    request = s.PlaceRegionRequest(request_id=request_id(), region_code=region, reason="interop placement",
                                   end_date=pb_date(pb, shanghai_today() + datetime.timedelta(days=60)))
    placed = ctx.scheduling().PlaceRegion(request, timeout=RPC_TIMEOUT, metadata=platform)
    expect([r.agency_id for r in placed.agencies] == [agency.id] and placed.agencies[0].rank == 1
           and placed.agencies[0].accounts_placed == 1, f"agencies {list(placed.agencies)}")
    expect(len(placed.placements) == 1 and placed.accounts_left_unplaced == 1, f"{placed}")
    item = placed.placements[0]
    expect(item.account_id in {x.id for x in accounts} and item.agency_id == agency.id, f"placement {item}")
    expect(item.reason.startswith(f"interop placement; by rule in region {region}: agency {agency.id} ranked 1 of 1"),
           f"reason {item.reason!r}")
    expect_id(item.placement_id, "plc", "RegionPlacementItem.placement_id")
    expect(ctx.scheduling().PlaceRegion(request, timeout=RPC_TIMEOUT, metadata=platform) == placed, "replayed PlaceRegion differs")
    bad = s.PlaceRegionRequest(request_id=request_id(), region_code=region, reason="x",
                               end_date=pb_date(pb, utc_today() - datetime.timedelta(days=1)))
    expect_code(lambda: ctx.scheduling().PlaceRegion(bad, timeout=RPC_TIMEOUT, metadata=platform),
                grpc.StatusCode.INVALID_ARGUMENT, field="end_date")
    for role in ("agency_manager", "compliance", "service"):
        expect_code(lambda: ctx.scheduling().PlaceRegion(request, timeout=RPC_TIMEOUT, metadata=ctx.auth(role)),
                    grpc.StatusCode.PERMISSION_DENIED, what=f"PlaceRegion by {role}")
    read = ctx.accounts().GetAccount(a.GetAccountRequest(account_id=item.account_id), timeout=RPC_TIMEOUT, metadata=platform)
    expect(read.assigned_agency_id == agency.id and read.placement.id == item.placement_id, f"placed account {read.placement}")

    ctx.scheduling().SuspendAgency(s.SuspendAgencyRequest(request_id=request_id(), agency_id=agency.id, reason="interop: audit"),
                                   timeout=RPC_TIMEOUT, metadata=platform)
    deadline = time.monotonic() + 15
    while True:
        read = ctx.accounts().GetAccount(a.GetAccountRequest(account_id=item.account_id), timeout=RPC_TIMEOUT, metadata=platform)
        if not read.assigned_agency_id:
            break
        expect(time.monotonic() < deadline, "the suspended agency's account was not recalled within 15 s")
        time.sleep(0.2)
    expect(not read.HasField("placement"), f"placement after the recall {read.placement}")


# ---------------------------------------------------------------------------
# Visits
# ---------------------------------------------------------------------------

def check_visits_unauthenticated(ctx):
    """GetVisit without a token and with an unverifiable one: UNAUTHENTICATED."""
    stub = ctx.visits()
    request = ctx.pb.visits.GetVisitRequest(visit_id=unknown_id("vis"))
    expect_code(lambda: stub.GetVisit(request, timeout=RPC_TIMEOUT),
                grpc.StatusCode.UNAUTHENTICATED, what="without a token")
    expect_code(lambda: stub.GetVisit(request, timeout=RPC_TIMEOUT, metadata=[("authorization", "Bearer garbage")]),
                grpc.StatusCode.UNAUTHENTICATED, what="with 'Bearer garbage'")


def check_visits_permission_denied(ctx):
    """Every role may call GetVisit; GetComplaint is not open to collectors, so a collector
    token gets PERMISSION_DENIED (decided before the complaint is looked up)."""
    request = ctx.pb.visits.GetComplaintRequest(complaint_id=unknown_id("cmp"))
    expect_code(lambda: ctx.visits().GetComplaint(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("collector")),
                grpc.StatusCode.PERMISSION_DENIED)


def check_visits_invalid_argument(ctx):
    """GetVisit with an empty visit_id: INVALID_ARGUMENT naming visit_id."""
    request = ctx.pb.visits.GetVisitRequest(visit_id="")
    expect_code(lambda: ctx.visits().GetVisit(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("platform")),
                grpc.StatusCode.INVALID_ARGUMENT, field="visit_id")


def check_visits_not_found(ctx):
    """GetVisit of a well-formed, unknown id: NOT_FOUND."""
    request = ctx.pb.visits.GetVisitRequest(visit_id=unknown_id("vis"))
    expect_code(lambda: ctx.visits().GetVisit(request, timeout=RPC_TIMEOUT, metadata=ctx.auth("platform")),
                grpc.StatusCode.NOT_FOUND)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

def _generic(fn, service):
    return lambda ctx: fn(ctx, service)


def build_registry():
    """[(full check name, service, function(ctx))] in run order: per service, the transport and
    error checks, then its domain flow."""
    specific = {
        "accounts": {
            "unauthenticated": check_accounts_unauthenticated,
            "permission_denied": check_accounts_permission_denied,
            "invalid_argument": check_accounts_invalid_argument,
            "not_found": check_accounts_not_found,
            "create_open_get": check_accounts_create_open_get,
            "debtor_corrections": check_accounts_debtor_corrections,
            "personal_data_access": check_accounts_personal_data_access,
            "watch_events": check_accounts_watch_events,
            "bulk_import": check_accounts_bulk_import,
            "placements": check_accounts_placements,
        },
        "scheduling": {
            "unauthenticated": check_scheduling_unauthenticated,
            "permission_denied": check_scheduling_permission_denied,
            "invalid_argument": check_scheduling_invalid_argument,
            "not_found": check_scheduling_not_found,
            "register_agency_collector": check_scheduling_register_agency_collector,
            "agency_lifecycle": check_scheduling_agency_lifecycle,
            "wrong_address_refused": check_scheduling_wrong_address_refused,
            "place_region": check_scheduling_place_region,
        },
        "visits": {
            "unauthenticated": check_visits_unauthenticated,
            "permission_denied": check_visits_permission_denied,
            "invalid_argument": check_visits_invalid_argument,
            "not_found": check_visits_not_found,
        },
    }
    generic = {
        "health_serving": check_health_serving,
        "unimplemented": check_unimplemented,
        "deadline_exceeded": check_deadline_exceeded,
        "metadata_echo": check_metadata_echo,
    }
    order = ["health_serving", "unauthenticated", "permission_denied", "unimplemented", "deadline_exceeded",
             "metadata_echo", "invalid_argument", "not_found"]
    registry = []
    for service in SERVICES:
        names = order + [name for name in specific[service] if name not in order]
        for name in names:
            fn = _generic(generic[name], service) if name in generic else specific[service][name]
            registry.append((f"{service}.{name}", service, fn))
    return registry


# Checks that call another service besides their own (whose address is then required too).
ALSO_NEEDS = {"scheduling.wrong_address_refused": ("accounts",), "scheduling.place_region": ("accounts", "visits")}


def select(registry, only):
    """The registry entries matched by the --only items (all when `only` is None)."""
    if only is None:
        return registry
    items = [item.strip() for item in only.split(",") if item.strip()]
    if not items:
        raise ValueError("--only: no check names given")
    chosen = set()
    for item in items:
        matches = {name for name, service, _ in registry
                   if item in (name, service) or name.split(".", 1)[1] == item}
        if not matches:
            known = ", ".join(name for name, _, _ in registry)
            raise ValueError(f"--only: unknown check {item!r} (known: {known})")
        chosen |= matches
    return [entry for entry in registry if entry[0] in chosen]


def load_tokens(path):
    with open(path, encoding="utf-8") as file:
        tokens = json.load(file)
    if not isinstance(tokens, dict):
        raise ValueError(f"{path}: expected a JSON object mapping role to token")
    return tokens


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="Stock-gRPC (grpcio) interop checks against the Doorstep services.")
    for service in SERVICES:
        parser.add_argument(f"--{service}", metavar="HOST:PORT",
                            help=f"address of the {service} service (required when any of its checks runs)")
    parser.add_argument("--tokens", metavar="FILE", required=True,
                        help='JSON {"platform": JWT, "compliance": JWT, "collector": JWT, "service": JWT, '
                             '"agency_manager": JWT}')
    parser.add_argument("--tls-ca", metavar="PEM",
                        help="call over TLS (grpc.ssl_channel_credentials), trusting these CA certificates")
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate for mutual TLS (with --tls-key)")
    parser.add_argument("--tls-key", metavar="PEM", help="client private key for mutual TLS")
    parser.add_argument("--only", metavar="NAME,NAME",
                        help="run only these checks: full names (accounts.not_found), services (visits) "
                             "or bare check names (health_serving)")
    args = parser.parse_args(argv)
    try:
        checks = select(build_registry(), args.only)
        tokens = load_tokens(args.tokens)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    needed = {service for _, service, _ in checks} | {other for name, _, _ in checks for other in ALSO_NEEDS.get(name, ())}
    missing = sorted(service for service in needed if not getattr(args, service))
    if missing:
        parser.error("missing address: " + ", ".join(f"--{service}" for service in missing))
    return args, checks, tokens


def main(argv=None):
    args, checks, tokens = parse_arguments(sys.argv[1:] if argv is None else argv)
    pb = load_stubs()
    addresses = {service: getattr(args, service) for service in SERVICES}
    credentials = None
    if args.tls_ca:
        def read(path):
            with open(path, "rb") as file:
                return file.read()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(args.tls_ca),
            private_key=read(args.tls_key) if args.tls_key else None,
            certificate_chain=read(args.tls_cert) if args.tls_cert else None)
    ctx = Context(pb, addresses, tokens, args.tokens, credentials)
    failures = 0
    for name, _, fn in checks:
        try:
            fn(ctx)
            print(f"ok {name}", flush=True)
        except Failed as failure:
            failures += 1
            print(f"FAIL {name}: {failure}", flush=True)
        except grpc.RpcError as error:
            failures += 1
            code = error.code() if callable(getattr(error, "code", None)) else None
            details = error.details() if callable(getattr(error, "details", None)) else str(error)
            print(f"FAIL {name}: unexpected {code.name if code else 'RpcError'}: {details!r}", flush=True)
        except Exception as error:  # noqa: BLE001 — report anything unexpected as a failure
            failures += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
    ctx.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
