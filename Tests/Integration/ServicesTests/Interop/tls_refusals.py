#!/usr/bin/env python3
"""What a mutual-TLS Doorstep listener refuses, seen by a stock grpcio client and raw sockets.

Against one service started with --tls-cert-file, --tls-key-file and --tls-client-ca-file:

  mtls_ok                  a client certificate from the CA: health SERVING
  no_client_certificate    TLS without a client certificate: refused at the handshake (UNAVAILABLE)
  other_ca_certificate     a client certificate from another CA: refused at the handshake
  untrusted_server         a client trusting only another CA refuses the server (UNAVAILABLE)
  plaintext_to_tls         insecure_channel to the TLS port: UNAVAILABLE, no hang
  raw_plaintext_preface    the HTTP/2 preface in clear: the server closes the connection
  no_h2_alpn               a TLS client offering only http/1.1: closed after the handshake
  service_token_needs_its_certificate
                           a `service` token (subject scheduling) with the operator's certificate:
                           PERMISSION_DENIED; with the scheduling certificate: passes (NOT_FOUND)
  still_serving            after all of the above, the mutual-TLS call still works

Prints "ok NAME" per check, "FAIL NAME: why" otherwise; exit 1 on any failure.
"""

import argparse
import os
import socket
import ssl
import sys
import uuid

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from services_interop import load_stubs  # noqa: E402

TIMEOUT = 10


def read(path):
    with open(path, "rb") as file:
        return file.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True, help="HOST:PORT of a mutual-TLS accounts service")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--operator-cert", required=True)
    parser.add_argument("--operator-key", required=True)
    parser.add_argument("--service-cert", required=True, help="the scheduling service's certificate")
    parser.add_argument("--service-key", required=True)
    parser.add_argument("--other-ca", required=True, help="another CA (its operator certificate is next to it)")
    parser.add_argument("--other-cert", required=True)
    parser.add_argument("--other-key", required=True)
    parser.add_argument("--service-token", required=True, help="a service-role token with subject scheduling")
    args = parser.parse_args()
    pb = load_stubs()
    host, port = args.address.rsplit(":", 1)
    failures = 0

    def credentials(ca, cert=None, key=None):
        return grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key) if key else None,
                                            certificate_chain=read(cert) if cert else None)

    def health(channel):
        stub = pb.health_grpc.HealthStub(channel)
        return stub.Check(pb.health.HealthCheckRequest(service=""), timeout=TIMEOUT)

    def expect_code(fn, code, what):
        try:
            fn()
        except grpc.RpcError as error:
            if error.code() != code:
                raise AssertionError(f"{what}: expected {code.name}, got {error.code().name}: {error.details()}")
            return error
        raise AssertionError(f"{what}: expected {code.name}, the call succeeded")

    def mtls_ok():
        with grpc.secure_channel(args.address, credentials(args.ca, args.operator_cert, args.operator_key)) as channel:
            response = health(channel)
            assert response.status == pb.health.HealthCheckResponse.SERVING, f"status {response.status}"

    def no_client_certificate():
        with grpc.secure_channel(args.address, credentials(args.ca)) as channel:
            expect_code(lambda: health(channel), grpc.StatusCode.UNAVAILABLE, "no client certificate")

    def other_ca_certificate():
        with grpc.secure_channel(args.address, credentials(args.ca, args.other_cert, args.other_key)) as channel:
            expect_code(lambda: health(channel), grpc.StatusCode.UNAVAILABLE, "client certificate of another CA")

    def untrusted_server():
        with grpc.secure_channel(args.address, credentials(args.other_ca, args.other_cert, args.other_key)) as channel:
            expect_code(lambda: health(channel), grpc.StatusCode.UNAVAILABLE, "server not trusted")

    def plaintext_to_tls():
        with grpc.insecure_channel(args.address) as channel:
            expect_code(lambda: health(channel), grpc.StatusCode.UNAVAILABLE, "plaintext to a TLS port")

    def raw_plaintext_preface():
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as raw:
            raw.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            received = b""
            while True:
                chunk = raw.recv(4096)  # raises socket.timeout if the server hangs
                if not chunk:
                    break
                received += chunk
            # Whatever came back (a TLS alert, or nothing), the server closed the connection.
            assert len(received) < 1024, f"unexpected {len(received)} bytes in answer to plaintext"

    def no_h2_alpn():
        context = ssl.create_default_context(cafile=args.ca)
        context.load_cert_chain(args.operator_cert, args.operator_key)
        context.set_alpn_protocols(["http/1.1"])
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() != "h2", "h2 selected although not offered"
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                try:
                    data = tls.recv(4096)
                except (ssl.SSLError, ConnectionResetError):
                    data = b""
                assert data == b"", f"the server answered a client without h2: {data[:80]!r}"

    def service_token_needs_its_certificate():
        metadata = (("authorization", f"Bearer {args.service_token}"),)
        request = pb.accounts.GetAccountRequest(account_id="acc_" + uuid.uuid4().hex[:26].upper())
        with grpc.secure_channel(args.address, credentials(args.ca, args.operator_cert, args.operator_key)) as channel:
            stub = pb.accounts_grpc.AccountsStub(channel)
            error = expect_code(lambda: stub.GetAccount(request, metadata=metadata, timeout=TIMEOUT),
                                grpc.StatusCode.PERMISSION_DENIED, "service token with the operator's certificate")
            assert "scheduling" in error.details(), error.details()
        with grpc.secure_channel(args.address, credentials(args.ca, args.service_cert, args.service_key)) as channel:
            stub = pb.accounts_grpc.AccountsStub(channel)
            expect_code(lambda: stub.GetAccount(request, metadata=metadata, timeout=TIMEOUT),
                        grpc.StatusCode.NOT_FOUND, "service token with the scheduling certificate")

    checks = [("mtls_ok", mtls_ok), ("no_client_certificate", no_client_certificate),
              ("other_ca_certificate", other_ca_certificate), ("untrusted_server", untrusted_server),
              ("plaintext_to_tls", plaintext_to_tls), ("raw_plaintext_preface", raw_plaintext_preface),
              ("no_h2_alpn", no_h2_alpn), ("service_token_needs_its_certificate", service_token_needs_its_certificate),
              ("still_serving", mtls_ok)]
    for name, check in checks:
        try:
            check()
            print(f"ok {name}", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported by name
            failures += 1
            print(f"FAIL {name}: {error!r}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
