#!/usr/bin/env python3
"""The first half of the collection story driven by a stock Python grpcio client.

Platform teams need nothing of ours: stubs are generated from proto/ by grpcio-tools, tokens are
plain bearer JWTs. Against the three running services (dev mode, started with
--test-clock-offset-file FILE), this script:

  1. opens an account 45 days overdue (REMOTE stage),
  2. records three undelivered reminder SMS and runs the stage engine -> FIELD,
  3. finds the account among the region's visit candidates,
  4. registers an agency and a crew of two collectors,
  5. books a visit 23 hours ahead -> FAILED_PRECONDITION naming `advance-notice`, in the message
     and in the Refusal carried by grpc-status-details-bin; nothing is booked,
  5b. decodes refusals with the stock grpcio-status package: the google.rpc.PreconditionFailure
     of a booking that breaks two rules lists both rule ids, a booking without request_id
     carries a google.rpc.BadRequest naming the field,
  6. books a visit two days ahead -> PROPOSED, and waits until its notice is delivered
     (NOTIFIED), then confirms it,
  7. suspends the agency: the confirmed visit is CANCELLED (reason COMPLIANCE) and its
     cancellation notice delivered; a booking with the agency fails `agency-status`; the
     agency is reinstated.

Usage:
    story_grpcio.py --accounts HOST:PORT --scheduling HOST:PORT --token PLATFORM_JWT --base-ms MS

BASE_MS is the services' "now" (10:00 Asia/Shanghai on some day), set by the caller through the
clock file. Prints "ok STEP" per step; exits 1 on the first failure.
"""

import argparse
import datetime
import os
import sys
import time
import uuid

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import signal  # noqa: E402
signal.pthread_sigmask(signal.SIG_SETMASK, [])

sys.path.insert(0, os.path.dirname(__file__))
from services_interop import load_stubs  # noqa: E402

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def later_window(base):
    """10:00 two days after BASE_MS: enough notice, lawful hours."""
    return base + 2 * DAY_MS


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", required=True)
    parser.add_argument("--scheduling", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--base-ms", type=int, required=True)
    args = parser.parse_args()
    s = load_stubs()
    metadata = [("authorization", "Bearer " + args.token)]
    accounts = s.accounts_grpc.AccountsStub(grpc.insecure_channel(args.accounts))
    scheduling = s.scheduling_grpc.SchedulingStub(grpc.insecure_channel(args.scheduling))
    base = args.base_ms
    today = datetime.datetime.fromtimestamp(base / 1000, SHANGHAI).date()

    def date(d):
        return s.types.Date(year=d.year, month=d.month, day=d.day)

    def cny(minor):
        return s.types.Money(amount_minor=minor, currency_code="CNY")

    def step(name):
        print("ok " + name, flush=True)

    # 1. An account 45 days overdue.
    debtor = accounts.CreateDebtor(s.accounts.CreateDebtorRequest(
        request_id=str(uuid.uuid4()), debtor=s.accounts.Debtor(
            external_id="py-" + uuid.uuid4().hex[:10], full_name="王五", national_id="11010519491231002X",
            phone="13900001111", time_zone="Asia/Shanghai",
            address=s.types.Address(text="上海市浦东新区", region_code="310115",
                                    location=s.types.GeoPoint(latitude=31.2397, longitude=121.4998)))),
        metadata=metadata, timeout=10)
    instalments = [s.accounts.OpeningInstalment(due_date=date(today - datetime.timedelta(days=45 - 30 * i)), amount_due=cny(100_000))
                   for i in range(3)]
    account = accounts.OpenAccount(s.accounts.OpenAccountRequest(
        request_id=str(uuid.uuid4()), debtor_id=debtor.id, external_id="py-loan-" + uuid.uuid4().hex[:8], lender_id="lender-py",
        product=s.accounts.PRODUCT_TYPE_INSTALMENT_LOAN, principal=cny(300_000),
        opened_date=date(today - datetime.timedelta(days=80)), instalments=instalments), metadata=metadata, timeout=10)
    assert account.stage == s.accounts.STAGE_REMOTE, account.stage
    step("open_account_remote")

    # 2. Reminders fail three times; the stage engine moves it to FIELD.
    for n in range(3):
        accounts.RecordContactAttempt(s.accounts.RecordContactAttemptRequest(
            request_id=str(uuid.uuid4()), account_id=account.id, channel=s.types.CONTACT_CHANNEL_SMS,
            outcome=s.accounts.CONTACT_OUTCOME_SMS_UNDELIVERED, attempted_ms=base - (10 - n) * 60_000), metadata=metadata, timeout=10)
    accounts.EvaluateStages(s.accounts.EvaluateStagesRequest(request_id=str(uuid.uuid4())), metadata=metadata, timeout=30)
    account = accounts.GetAccount(s.accounts.GetAccountRequest(account_id=account.id), metadata=metadata, timeout=10)
    assert account.stage == s.accounts.STAGE_FIELD, (account.stage, account.stage_reason)
    step("reminders_then_field")

    # 3. A visit candidate.
    candidates = accounts.ListVisitCandidates(s.accounts.ListVisitCandidatesRequest(region_code="310115", page_size=500),
                                              metadata=metadata, timeout=30)
    assert any(c.account_id == account.id for c in candidates.candidates), "account not among candidates"
    step("visit_candidate")

    # 4. The agency and a crew of two.
    inspected = today - datetime.timedelta(days=30)
    agency = scheduling.RegisterAgency(s.scheduling.RegisterAgencyRequest(
        request_id=str(uuid.uuid4()), agency=s.scheduling.Agency(
            display_name="平安上门催收", licence_number="PY-" + uuid.uuid4().hex[:8], licence_expiry_date=date(datetime.date(2099, 1, 1)),
            regions_served=["310115"], last_inspection_date=date(inspected))), metadata=metadata, timeout=10)
    crew = []
    for n in range(2):
        collector = scheduling.RegisterCollector(s.scheduling.RegisterCollectorRequest(
            request_id=str(uuid.uuid4()), collector=s.scheduling.Collector(
                agency_id=agency.id, full_name="催收员%d" % n, certification_number="PYC-" + uuid.uuid4().hex[:8],
                certification_expiry_date=date(datetime.date(2099, 1, 1)), region_code="310115",
                home_location=s.types.GeoPoint(latitude=31.23, longitude=121.47), time_zone="Asia/Shanghai",
                shift_start=s.types.TimeOfDay(hours=8), shift_end=s.types.TimeOfDay(hours=20), daily_capacity=6)),
            metadata=metadata, timeout=10)
        crew.append(collector.id)
    step("agency_and_crew")

    # 5. Too little notice: refused, naming the rule, nothing booked.
    soon = base + 23 * HOUR_MS  # 09:00 the next day: lawful hours, but only 23 h of notice
    try:
        scheduling.BookAppointment(s.scheduling.BookAppointmentRequest(
            request_id=str(uuid.uuid4()), account_id=account.id, crew_collector_ids=crew, window_start_ms=soon,
            window_end_ms=soon + 2 * HOUR_MS, purpose=s.scheduling.VISIT_PURPOSE_DISCUSS_REPAYMENT), metadata=metadata, timeout=10)
        raise AssertionError("a booking 23 h ahead must be refused")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.code()
        assert "advance-notice" in error.details(), error.details()
        details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
        assert details, "no grpc-status-details-bin"
        status = s.types.RpcStatus.FromString(details)
        refusal = s.types.Refusal.FromString(status.details[0].value)
        assert [v.rule_id for v in refusal.violations] == ["advance-notice"], refusal
        assert refusal.rule_pack_id == "cn-2026"
    listed = scheduling.ListAppointments(s.scheduling.ListAppointmentsRequest(account_id=account.id), metadata=metadata, timeout=10)
    assert len(listed.appointments) == 0
    step("refused_advance_notice")

    # 5b. The same refusals as stock tools see them: grpcio-status decodes the standard
    #     google.rpc details beside the Refusal, every rule id in the PreconditionFailure and
    #     every field in the BadRequest.
    night = base + 13 * HOUR_MS  # 23:00 the same day: too little notice and outside lawful hours
    for request, code, kind in [
        (s.scheduling.BookAppointmentRequest(
            request_id=str(uuid.uuid4()), account_id=account.id, crew_collector_ids=crew, window_start_ms=night,
            window_end_ms=night + 2 * HOUR_MS, purpose=s.scheduling.VISIT_PURPOSE_DISCUSS_REPAYMENT),
         grpc.StatusCode.FAILED_PRECONDITION, error_details_pb2.PreconditionFailure),
        (s.scheduling.BookAppointmentRequest(
            request_id="", account_id=account.id, crew_collector_ids=crew, window_start_ms=later_window(base),
            window_end_ms=later_window(base) + 2 * HOUR_MS, purpose=s.scheduling.VISIT_PURPOSE_DISCUSS_REPAYMENT),
         grpc.StatusCode.INVALID_ARGUMENT, error_details_pb2.BadRequest),
    ]:
        try:
            scheduling.BookAppointment(request, metadata=metadata, timeout=10)
            raise AssertionError("the booking must be refused: %s" % request)
        except grpc.RpcError as error:
            assert error.code() == code, (error.code(), error.details())
            rich = rpc_status.from_call(error)
            assert rich is not None and rich.code == code.value[0], rich
            refusal = s.types.Refusal.FromString(rich.details[0].value)
            standard = [detail for detail in rich.details if detail.Is(kind.DESCRIPTOR)]
            assert len(standard) == 1, [detail.type_url for detail in rich.details]
            unpacked = kind()
            standard[0].Unpack(unpacked)
            if kind is error_details_pb2.PreconditionFailure:
                rules = [v.type for v in unpacked.violations]
                assert rules == [v.rule_id for v in refusal.violations], (rules, refusal)
                assert {"advance-notice", "contact-hours"} <= set(rules), rules
                assert all(v.description for v in unpacked.violations), unpacked
            else:
                fields = [v.field for v in unpacked.field_violations]
                assert fields == [v.field for v in refusal.violations] and "request_id" in fields, (fields, refusal)
    assert len(scheduling.ListAppointments(s.scheduling.ListAppointmentsRequest(account_id=account.id),
                                           metadata=metadata, timeout=10).appointments) == 0
    step("standard_error_details")

    # 6. Two days ahead: booked, announced, confirmed.
    later = base + 2 * DAY_MS
    booked = scheduling.BookAppointment(s.scheduling.BookAppointmentRequest(
        request_id=str(uuid.uuid4()), account_id=account.id, crew_collector_ids=crew, window_start_ms=later,
        window_end_ms=later + 2 * HOUR_MS, purpose=s.scheduling.VISIT_PURPOSE_DISCUSS_REPAYMENT), metadata=metadata, timeout=10)
    assert booked.state == s.scheduling.APPOINTMENT_STATE_PROPOSED
    deadline = time.time() + 20
    while True:
        current = scheduling.GetAppointment(s.scheduling.GetAppointmentRequest(appointment_id=booked.id), metadata=metadata, timeout=10)
        if current.state == s.scheduling.APPOINTMENT_STATE_NOTIFIED:
            break
        assert time.time() < deadline, "the notice was not delivered"
        time.sleep(0.1)
    assert current.notices[0].delivery.status == s.types.DELIVERY_STATUS_DELIVERED
    confirmed = scheduling.ConfirmAppointment(s.scheduling.ConfirmAppointmentRequest(
        request_id=str(uuid.uuid4()), appointment_id=booked.id), metadata=metadata, timeout=10)
    assert confirmed.state == s.scheduling.APPOINTMENT_STATE_CONFIRMED
    step("booked_notified_confirmed")

    # 7. The agency is suspended: its confirmed visit is cancelled and the debtor is told;
    #    nothing can be booked with it until it is reinstated.
    suspended = scheduling.SuspendAgency(s.scheduling.SuspendAgencyRequest(
        request_id=str(uuid.uuid4()), agency_id=agency.id, expected_version=agency.version,
        reason="licence under review"), metadata=metadata, timeout=10)
    assert suspended.status == s.scheduling.AGENCY_STATUS_SUSPENDED, suspended
    assert suspended.status_changes[-1].appointments_cancelled == 1, suspended.status_changes
    deadline = time.time() + 20
    while True:
        current = scheduling.GetAppointment(s.scheduling.GetAppointmentRequest(appointment_id=booked.id), metadata=metadata, timeout=10)
        assert current.state == s.scheduling.APPOINTMENT_STATE_CANCELLED, current.state
        assert current.cancellation.reason == s.scheduling.CANCELLATION_REASON_COMPLIANCE, current.cancellation
        notice = current.notices[-1]
        assert notice.kind == s.scheduling.NOTICE_KIND_CANCELLED, notice
        if notice.delivery.status == s.types.DELIVERY_STATUS_DELIVERED:
            break
        assert time.time() < deadline, "the cancellation notice was not delivered"
        time.sleep(0.1)
    try:
        scheduling.BookAppointment(s.scheduling.BookAppointmentRequest(
            request_id=str(uuid.uuid4()), account_id=account.id, crew_collector_ids=crew, window_start_ms=later + DAY_MS,
            window_end_ms=later + DAY_MS + 2 * HOUR_MS, purpose=s.scheduling.VISIT_PURPOSE_DISCUSS_REPAYMENT),
            metadata=metadata, timeout=10)
        raise AssertionError("a booking with a suspended agency must be refused")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, (error.code(), error.details())
        refusal = s.types.Refusal.FromString(rpc_status.from_call(error).details[0].value)
        assert [v.rule_id for v in refusal.violations] == ["agency-status"], refusal
    reinstated = scheduling.ReinstateAgency(s.scheduling.ReinstateAgencyRequest(
        request_id=str(uuid.uuid4()), agency_id=agency.id, reason="review closed"), metadata=metadata, timeout=10)
    assert reinstated.status == s.scheduling.AGENCY_STATUS_ACTIVE, reinstated
    step("agency_suspended_visit_cancelled")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, grpc.RpcError) as error:
        print("FAIL story: %r" % (error,), flush=True)
        sys.exit(1)
