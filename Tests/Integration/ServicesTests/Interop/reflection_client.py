#!/usr/bin/env python3
"""Server reflection against the running Doorstep services, with the stock reflection
client and no .proto files: grpcio-reflection's ProtoReflectionDescriptorDatabase (the
protocol grpcurl and GUI clients use) lists each service's services, a DescriptorPool on it
describes every service and method, and message classes built from the fetched descriptors
(protobuf's message_factory) make one call of each service.

Nothing here reads proto/ or imports generated Doorstep stubs: the only descriptors the
script starts with are those grpcio-reflection ships for the reflection protocol itself.

Usage:
    reflection_client.py --accounts HOST:PORT --scheduling HOST:PORT --visits HOST:PORT \
                         --token JWT [--off HOST:PORT]

--token is a platform bearer token (sent as `authorization: Bearer JWT` on the domain calls;
health and reflection get no credentials). --off is a service started with
`--reflection off`: reflection there must be UNIMPLEMENTED.

Prints one line per check ("ok NAME" or "FAIL NAME: why") and exits 1 if any failed.
"""

import argparse
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

# A child started from a Swift test inherits the spawning thread's signal mask, where
# SwiftNIO/Dispatch block most signals (SIGTERM included): unblock them, or this process
# cannot be stopped and gRPC's own machinery misbehaves.
import signal  # noqa: E402
signal.pthread_sigmask(signal.SIG_SETMASK, [])

RPC_TIMEOUT = 10.0
REFLECTION = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
HEALTH = "grpc.health.v1.Health"

# Per service: its full name, the method called with the platform token, and its request
# as proto3 JSON.
SERVICES = {
    "accounts": ("doorstep.accounts.v1.Accounts", "ListAccounts", {"pageSize": 10}),
    "scheduling": ("doorstep.scheduling.v1.Scheduling", "ListAppointments", {"pageSize": 10}),
    "visits": ("doorstep.visits.v1.Visits", "ListVisits", {"pageSize": 10}),
}


class Failed(Exception):
    pass


def expect(condition, why):
    if not condition:
        raise Failed(why)


def unary(channel, pool, method):
    """A callable for `method` (a MethodDescriptor) with request and response classes made
    from the reflected descriptors."""
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    return request, channel.unary_unary(path, request_serializer=request.SerializeToString,
                                        response_deserializer=response.FromString)


def check_service(name, address, token):
    full_name, method_name, request_json = SERVICES[name]
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        listed = set(database.get_services())
        expect(listed == {full_name, HEALTH, *REFLECTION}, f"list_services: {sorted(listed)}")

        # Describe every listed service: each method's request and response types resolve,
        # and each message type makes a class.
        pool = descriptor_pool.DescriptorPool(database)
        methods = 0
        for service_name in sorted(listed):
            service = pool.FindServiceByName(service_name)
            expect(service.methods, f"{service_name} has no methods")
            for method in service.methods:
                expect(pool.FindMethodByName(method.full_name).full_name == method.full_name, method.full_name)
                for message in (method.input_type, method.output_type):
                    instance = message_factory.GetMessageClass(message)()
                    expect(instance.DESCRIPTOR.full_name == message.full_name, message.full_name)
                methods += 1
        streaming = pool.FindMethodByName(f"{REFLECTION[0]}.ServerReflectionInfo")
        expect(streaming.client_streaming and streaming.server_streaming, "ServerReflectionInfo is bidirectional")
        # Comments travel with the descriptors (source info), as grpcurl describe shows them.
        service_file = pool.FindFileContainingSymbol(full_name)
        expect(service_file.dependencies and service_file.dependencies[0].name == "doorstep/type/v1/types.proto",
               f"{service_file.name} imports {[d.name for d in service_file.dependencies]}")

        # One call of the service, with a request built from JSON by its reflected class.
        method = pool.FindMethodByName(f"{full_name}.{method_name}")
        request_class, call = unary(channel, pool, method)
        request = json_format.ParseDict(request_json, request_class())
        response = call(request, timeout=RPC_TIMEOUT, metadata=[("authorization", f"Bearer {token}")])
        expect(response.DESCRIPTOR.full_name == method.output_type.full_name, f"{method_name} answered {response}")
        json_format.MessageToDict(response)

        # And health, without credentials, with classes from reflection too.
        request_class, check = unary(channel, pool, pool.FindMethodByName(f"{HEALTH}.Check"))
        status = check(json_format.ParseDict({"service": full_name}, request_class()), timeout=RPC_TIMEOUT)
        expect(json_format.MessageToDict(status) == {"status": "SERVING"}, f"health: {status}")
        return methods


def check_v1_one_stream(address):
    """grpc.reflection.v1 (its messages are v1alpha's, on the wire): several requests on one
    stream, each answered in turn; imports already sent are not sent again; host and the
    request are echoed."""
    with grpc.insecure_channel(address) as channel:
        info = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                     request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        requests = [
            reflection_pb2.ServerReflectionRequest(host="h1", file_containing_symbol="doorstep.accounts.v1.Accounts.GetAccount"),
            reflection_pb2.ServerReflectionRequest(host="h2", file_by_filename="doorstep/type/v1/types.proto"),
            reflection_pb2.ServerReflectionRequest(host="h3", file_containing_symbol="doorstep.accounts.v1.Nope"),
            reflection_pb2.ServerReflectionRequest(host="h4", list_services=""),
        ]
        responses = list(info(iter(requests), timeout=RPC_TIMEOUT))
        expect(len(responses) == 4, f"{len(responses)} responses to 4 requests")
        for request, response in zip(requests, responses):
            expect(response.valid_host == request.host, f"valid_host {response.valid_host!r}")
            expect(response.original_request == request, f"original_request {response.original_request}")

        def names(response):
            result = []
            for serialized in response.file_descriptor_response.file_descriptor_proto:
                file = descriptor_pb2.FileDescriptorProto()
                file.ParseFromString(serialized)
                result.append(file.name)
            return result
        expect(names(responses[0]) == ["doorstep/accounts/v1/accounts.proto", "doorstep/type/v1/types.proto"],
               f"first: {names(responses[0])}")
        expect(names(responses[1]) == ["doorstep/type/v1/types.proto"], f"second: {names(responses[1])}")
        expect(responses[2].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], f"third: {responses[2]}")
        listed = sorted(service.name for service in responses[3].list_services_response.service)
        expect(listed == sorted(["doorstep.accounts.v1.Accounts", HEALTH, *REFLECTION]), f"fourth: {listed}")


def check_off(address):
    with grpc.insecure_channel(address) as channel:
        for path in ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                     "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"):
            info = channel.stream_stream(path, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                         response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
            try:
                list(info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=RPC_TIMEOUT))
            except grpc.RpcError as error:
                expect(error.code() == grpc.StatusCode.UNIMPLEMENTED, f"{path}: {error.code()} {error.details()}")
                continue
            raise Failed(f"{path} answered with --reflection off")
        # The service itself still answers (health needs no reflection).
        health = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
        expect(health(b"", timeout=RPC_TIMEOUT) == b"\x08\x01", "health SERVING")


def main():
    parser = argparse.ArgumentParser()
    for name in SERVICES:
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--off")
    args = parser.parse_args()
    checks = [(f"{name}.reflection", lambda name=name: check_service(name, getattr(args, name), args.token))
              for name in SERVICES]
    checks.append(("accounts.reflection_v1_one_stream", lambda: check_v1_one_stream(args.accounts)))
    if args.off:
        checks.append(("reflection_off", lambda: check_off(args.off)))
    failures = 0
    for name, check in checks:
        try:
            result = check()
            print(f"ok {name}" + (f" ({result} methods described)" if result else ""), flush=True)
        except Failed as failure:
            failures += 1
            print(f"FAIL {name}: {failure}", flush=True)
        except Exception as error:  # noqa: BLE001 — report anything unexpected as a failure
            failures += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
