#!/usr/bin/env python3
"""A stock grpcio server for doorstep.testing.v1.TestService (+ grpc.health.v1.Health), so
that Doorstep's client can be checked against the reference implementation.

Usage: grpcio_test_server.py [--port 0]   — prints "listening on 127.0.0.1:PORT".
Behaviour mirrors Tests/Support/RPCTestSupport/TestServiceImplementation.swift.
"""

import argparse
import sys
import time
from concurrent import futures

import grpc

from grpcio_client_checks import load_stubs

# A child started from a Swift test inherits the spawning thread's signal mask, where
# SwiftNIO/Dispatch block most signals (SIGTERM included): unblock them, or this process
# cannot be stopped and gRPC's own machinery misbehaves.
import signal  # noqa: E402
signal.pthread_sigmask(signal.SIG_SETMASK, [])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    kinds, service, service_grpc, health, health_grpc = load_stubs()

    class TestService(service_grpc.TestServiceServicer):
        def Echo(self, request, context):
            echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo-")]
            if echoed:
                context.send_initial_metadata(echoed)
                context.set_trailing_metadata([
                    (k[:-4] + "-trailer-bin", v) if k.endswith("-bin") else (k + "-trailer", v) for k, v in echoed])
            return request

        def Fail(self, request, context):
            context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == request.code)),
                          request.message)

        def Sleep(self, request, context):
            end = time.monotonic() + request.millis / 1000
            while time.monotonic() < end:
                if not context.is_active():
                    return kinds.Nothing()
                time.sleep(0.01)
            return kinds.Nothing()

        def Count(self, request, context):
            for index in range(request.count):
                if index and request.interval_millis:
                    time.sleep(request.interval_millis / 1000)
                yield kinds.Leaf(label=f"leaf {index}", amount=index)

    class Health(health_grpc.HealthServicer):
        def Check(self, request, context):
            if request.service in ("", "doorstep.testing.v1.TestService"):
                return health.HealthCheckResponse(status=health.HealthCheckResponse.SERVING)
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    service_grpc.add_TestServiceServicer_to_server(TestService(), server)
    health_grpc.add_HealthServicer_to_server(Health(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    sys.exit(main())
