#!/usr/bin/env python3
"""Stock-gRPC interop checks: a Python grpcio client, with stubs generated from proto/ by
grpcio-tools, calls a Doorstep server serving doorstep.testing.v1.TestService and
grpc.health.v1.Health.

Usage: grpcio_client_checks.py HOST:PORT [CHECK ...]
Prints one line per check ("ok NAME" or "FAIL NAME: why") and exits 1 if any failed.
"""

import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time

import grpc

# A child started from a Swift test inherits the spawning thread's signal mask, where
# SwiftNIO/Dispatch block most signals (SIGTERM included): unblock them, or this process
# cannot be stopped and gRPC's own machinery misbehaves.
import signal  # noqa: E402
signal.pthread_sigmask(signal.SIG_SETMASK, [])

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
PROTO = os.path.join(ROOT, "proto")


def load_stubs():
    """Generates Python stubs for the test service and health into a temp dir and imports them."""
    out = tempfile.mkdtemp(prefix="doorstep-stubs-")
    files = ["doorstep/testing/v1/field_kinds.proto", "doorstep/testing/v1/test_service.proto",
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
    kinds = importlib.import_module("doorstep.testing.v1.field_kinds_pb2")
    service = importlib.import_module("doorstep.testing.v1.test_service_pb2")
    service_grpc = importlib.import_module("doorstep.testing.v1.test_service_pb2_grpc")
    health = importlib.import_module("grpc_health_stubs.health.v1.health_pb2")
    health_grpc = importlib.import_module("grpc_health_stubs.health.v1.health_pb2_grpc")
    return kinds, service, service_grpc, health, health_grpc


class Failed(Exception):
    pass


def expect(condition, why):
    if not condition:
        raise Failed(why)


def expect_code(call, code, message=None):
    try:
        call()
    except grpc.RpcError as error:
        expect(error.code() == code, f"expected {code}, got {error.code()}: {error.details()}")
        if message is not None:
            expect(message in (error.details() or ""), f"expected message containing {message!r}, got {error.details()!r}")
        return error
    raise Failed(f"expected {code}, but the call succeeded")


def run_checks(scope, selected):
    """Runs every `check_NAME` function of `scope` (a `locals()`), or those named in
    `selected`, printing "ok NAME" or "FAIL NAME: why"; returns how many failed."""
    checks = {name[len("check_"):]: fn for name, fn in scope.items() if name.startswith("check_")}
    failures = 0
    for name, fn in checks.items():
        if selected and name not in selected:
            continue
        try:
            fn()
            print(f"ok {name}", flush=True)
        except Failed as failure:
            failures += 1
            print(f"FAIL {name}: {failure}", flush=True)
        except Exception as error:  # noqa: BLE001 — report anything unexpected as a failure
            failures += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
    return failures


def main():
    address = sys.argv[1]
    selected = set(sys.argv[2:])
    kinds, service, service_grpc, health, health_grpc = load_stubs()
    channel = grpc.insecure_channel(address)
    stub = service_grpc.TestServiceStub(channel)
    health_stub = health_grpc.HealthStub(channel)
    raw_echo = channel.unary_unary("/doorstep.testing.v1.TestService/Echo",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)

    def rich():
        return kinds.AllKinds(
            f_double=-121.473701, f_float=1.5, f_int64=-2**63, f_uint64=2**64 - 1, f_int32=-2**31,
            f_string="上門催收·張三·🙂", f_bytes=bytes(range(256)), f_level=99,
            f_leaf=kinds.Leaf(label="葉", amount=-1), r_int64=[-2**63, 0, 2**63 - 1],
            r_string=["a", "", "二"], r_leaf=[kinds.Leaf(label="x"), kinds.Leaf()], c_text="選")

    def check_health_serving():
        response = health_stub.Check(health.HealthCheckRequest(service=""), timeout=5)
        expect(response.status == health.HealthCheckResponse.SERVING, f"status {response.status}")
        response = health_stub.Check(health.HealthCheckRequest(service="doorstep.testing.v1.TestService"), timeout=5)
        expect(response.status == health.HealthCheckResponse.SERVING, f"service status {response.status}")

    def check_health_unknown_service():
        expect_code(lambda: health_stub.Check(health.HealthCheckRequest(service="nope"), timeout=5),
                    grpc.StatusCode.NOT_FOUND)

    def check_health_watch():
        responses = health_stub.Watch(health.HealthCheckRequest(service=""), timeout=5)
        first = next(responses)
        expect(first.status == health.HealthCheckResponse.SERVING, f"first status {first.status}")
        responses.cancel()

    def check_echo_round_trip():
        request = rich()
        response = stub.Echo(request, timeout=5)
        expect(response == request, "response differs from request")

    def check_echo_metadata():
        response, call = stub.Echo.with_call(kinds.AllKinds(f_int32=7), timeout=5, metadata=[
            ("x-echo-text", "value 1"), ("x-echo-data-bin", b"\x00\x01\xff")])
        initial = dict(call.initial_metadata())
        trailing = dict(call.trailing_metadata())
        expect(response.f_int32 == 7, "response")
        expect(initial.get("x-echo-text") == "value 1", f"initial metadata {initial}")
        expect(initial.get("x-echo-data-bin") == b"\x00\x01\xff", f"initial binary metadata {initial}")
        expect(trailing.get("x-echo-text-trailer") == "value 1", f"trailing metadata {trailing}")
        expect(trailing.get("x-echo-data-trailer-bin") == b"\x00\x01\xff", f"trailing binary metadata {trailing}")

    def check_unknown_method():
        unknown = channel.unary_unary("/doorstep.testing.v1.TestService/Nope",
                                      request_serializer=lambda b: b, response_deserializer=lambda b: b)
        expect_code(lambda: unknown(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED, "unknown method")
        unknown_service = channel.unary_unary("/no.such.Service/Call",
                                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
        expect_code(lambda: unknown_service(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED)

    def check_error_status_and_message():
        message = "規則 cn-2026.visit-hours: 22:00-08:00 100% refused"
        expect_code(lambda: stub.Fail(service.FailRequest(code=9, message=message), timeout=5),
                    grpc.StatusCode.FAILED_PRECONDITION, message)
        expect_code(lambda: stub.Fail(service.FailRequest(code=16, message="no token"), timeout=5),
                    grpc.StatusCode.UNAUTHENTICATED, "no token")

    def check_deadline():
        started = time.monotonic()
        expect_code(lambda: stub.Sleep(service.SleepRequest(millis=3000), timeout=0.3), grpc.StatusCode.DEADLINE_EXCEEDED)
        expect(time.monotonic() - started < 2.0, "the deadline was not enforced promptly")

    def check_cancellation():
        future = stub.Sleep.future(service.SleepRequest(millis=5000), timeout=10)
        time.sleep(0.3)
        future.cancel()
        expect(future.cancelled(), "the client could not cancel")

    def check_malformed_protobuf():
        expect_code(lambda: raw_echo(b"\xff\xff\xff", timeout=5), grpc.StatusCode.INVALID_ARGUMENT)
        # f_string (field 9) with invalid UTF-8, then with U+0000.
        expect_code(lambda: raw_echo(b"\x4a\x01\xff", timeout=5), grpc.StatusCode.INVALID_ARGUMENT, "f_string")
        expect_code(lambda: stub.Echo(kinds.AllKinds(f_string="a\x00b"), timeout=5),
                    grpc.StatusCode.INVALID_ARGUMENT, "f_string")

    def check_oversize_message():
        big = kinds.AllKinds(f_bytes=b"\x07" * (5 << 20))
        expect_code(lambda: stub.Echo(big, timeout=10), grpc.StatusCode.RESOURCE_EXHAUSTED)
        # The connection is still good afterwards.
        expect(stub.Echo(kinds.AllKinds(f_int32=1), timeout=5).f_int32 == 1, "call after the oversize one")

    def check_concurrent_streams():
        futures = [stub.Echo.future(kinds.AllKinds(f_int64=i), timeout=10) for i in range(200)]
        values = [future.result().f_int64 for future in futures]
        expect(values == list(range(200)), "responses out of place")

    def check_server_streaming():
        leaves = list(stub.Count(service.CountRequest(count=5), timeout=5))
        expect([leaf.amount for leaf in leaves] == list(range(5)), f"got {leaves}")
        expect(list(stub.Count(service.CountRequest(count=0), timeout=5)) == [], "empty stream")

    def check_streaming_deadline():
        def consume():
            for _ in stub.Count(service.CountRequest(count=100, interval_millis=100), timeout=0.5):
                pass
        expect_code(consume, grpc.StatusCode.DEADLINE_EXCEEDED)

    failures = run_checks(locals(), selected)
    channel.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
