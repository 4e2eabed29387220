#!/usr/bin/env python3
"""Client- and bidirectional-streaming checks: a Python grpcio client, with stubs generated
from proto/ by grpcio-tools, calls TestService.Collect (client streaming) and TestService.Chat
(bidirectional) of a Doorstep server.

Usage: grpcio_streaming_checks.py HOST:PORT [CHECK ...]
Prints one line per check ("ok NAME" or "FAIL NAME: why"), plus "stalled_bytes N" from the
backpressure check, and exits 1 if any failed.
"""

import os
import queue
import sys
import threading
import time

import grpc

# A child started from a Swift test inherits the spawning thread's signal mask, where
# SwiftNIO/Dispatch block most signals (SIGTERM included): unblock them, or this process
# cannot be stopped and gRPC's own machinery misbehaves.
import signal  # noqa: E402
signal.pthread_sigmask(signal.SIG_SETMASK, [])

sys.path.insert(0, os.path.dirname(__file__))
# The stubs, the assertions and the check runner of the unary checks beside this file.
from grpcio_client_checks import expect, expect_code, load_stubs, run_checks  # noqa: E402

# The backpressure check: a handler that sleeps HOLD_MS after the first leaf, while the client
# tries to send TOTAL bytes in leaves of CHUNK bytes.
HOLD_MS = 2500
CHUNK = 64 << 10
TOTAL = 128 << 20


class Feed:
    """A request iterator fed by the test, one message at a time; `close()` half-closes."""

    _END = object()

    def __init__(self):
        self._queue = queue.Queue()

    def send(self, message):
        self._queue.put(message)

    def close(self):
        self._queue.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        return item


def main():
    address = sys.argv[1]
    selected = set(sys.argv[2:])
    kinds, _, service_grpc, _, _ = load_stubs()
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 8 << 20)])
    stub = service_grpc.TestServiceStub(channel)
    leaf = kinds.Leaf
    raw_chat = channel.stream_stream("/doorstep.testing.v1.TestService/Chat",
                                     request_serializer=lambda b: b, response_deserializer=leaf.FromString)

    def check_chat_interleaved():
        # Each answer arrives before the next request is sent: the handler reads and
        # answers while the client's side is still open.
        feed = Feed()
        responses = stub.Chat(feed, timeout=10)
        for index in range(5):
            feed.send(leaf(label=f"m{index}", amount=index))
            answer = next(responses)
            expect(answer.label == f"echo:m{index}" and answer.amount == index + 1, f"answer {index}: {answer}")
        feed.close()
        rest = list(responses)
        expect(rest == [], f"after the half-close: {rest}")
        expect(responses.code() == grpc.StatusCode.OK, f"status {responses.code()}")

    def check_collect_half_close():
        response = stub.Collect(iter([leaf(label=str(i), amount=i) for i in range(1, 101)]), timeout=10)
        expect(response.label == "100" and response.amount == 5050, f"got {response}")

    def check_collect_empty():
        response = stub.Collect(iter([]), timeout=10)
        expect(response.label == "0" and response.amount == 0, f"got {response}")

    def check_chat_server_ends_first():
        # The handler returns on "end" while the client has not half-closed: OK all the same.
        feed = Feed()
        responses = stub.Chat(feed, timeout=10)
        feed.send(leaf(label="a"))
        expect(next(responses).label == "echo:a", "first answer")
        feed.send(leaf(label="end"))
        rest = list(responses)
        expect(rest == [], f"after end: {rest}")
        expect(responses.code() == grpc.StatusCode.OK, f"status {responses.code()}")
        feed.close()

    def check_chat_cancel():
        feed = Feed()
        responses = stub.Chat(feed, timeout=10)
        feed.send(leaf(label="a"))
        expect(next(responses).label == "echo:a", "first answer")
        responses.cancel()  # RST_STREAM CANCEL while the handler waits for the next leaf
        expect(responses.code() == grpc.StatusCode.CANCELLED, f"status {responses.code()}")
        feed.close()

    def check_chat_deadline():
        feed = Feed()
        started = time.monotonic()
        responses = stub.Chat(feed, timeout=0.5)
        feed.send(leaf(label="a"))
        expect(next(responses).label == "echo:a", "first answer")

        def drain():
            for _ in responses:
                pass
        expect_code(drain, grpc.StatusCode.DEADLINE_EXCEEDED)
        expect(time.monotonic() - started < 3, "the deadline was not enforced promptly")
        feed.close()

    def check_chat_malformed_mid_stream():
        feed = Feed()
        responses = raw_chat(feed, timeout=10)
        feed.send(leaf(label="ok").SerializeToString())
        expect(next(responses).label == "echo:ok", "first answer")
        feed.send(b"\x0a\x05ab")  # label: 5 bytes announced, 2 sent

        def drain():
            for _ in responses:
                pass
        expect_code(drain, grpc.StatusCode.INVALID_ARGUMENT, "malformed doorstep.testing.v1.Leaf")
        feed.close()

    def check_collect_fails_mid_stream():
        expect_code(lambda: stub.Collect(iter([leaf(amount=1), leaf(label="fail:9"), leaf(amount=2)]), timeout=10),
                    grpc.StatusCode.FAILED_PRECONDITION)

    def check_collect_oversize_message():
        expect_code(lambda: stub.Collect(iter([leaf(amount=1), leaf(label="x" * (5 << 20))]), timeout=10),
                    grpc.StatusCode.RESOURCE_EXHAUSTED)

    def check_concurrent_chats():
        # Many streams of one connection at once, each with its own answers.
        def one(index, results):
            answers = list(stub.Chat(iter([leaf(label=f"{index}-{n}") for n in range(50)]), timeout=20))
            results[index] = [answer.label for answer in answers] == [f"echo:{index}-{n}" for n in range(50)]
        results = {}
        threads = [threading.Thread(target=one, args=(index, results)) for index in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expect(len(results) == 20 and all(results.values()), f"results {results}")

    def check_collect_backpressure():
        # While the handler sleeps, the client can send only what the server buffers (about
        # 1 MiB per connection) plus what HTTP/2 flow control lets through; then it stalls.
        # When the handler reads again, everything arrives.
        yielded = [0]
        payload = "y" * CHUNK

        def leaves():
            yield leaf(label=f"hold:{HOLD_MS}")
            sent = 0
            while sent < TOTAL:
                sent += CHUNK
                yielded[0] = sent
                yield leaf(label=payload, amount=1)

        future = stub.Collect.future(leaves(), timeout=120)
        time.sleep(HOLD_MS / 1000 * 0.4)
        early = yielded[0]
        time.sleep(HOLD_MS / 1000 * 0.4)
        late = yielded[0]
        print(f"stalled_bytes {late}", flush=True)
        response = future.result()
        expect(response.amount == TOTAL // CHUNK, f"got {response.amount} leaves, sent {TOTAL // CHUNK}")
        expect(late < TOTAL // 4, f"the client sent {late} of {TOTAL} bytes while the handler slept")
        expect(late - early <= 2 * CHUNK, f"the client kept sending while the handler slept ({early} then {late})")

    def check_unary_after_streams():
        # The connection still serves a plain call after all of the above.
        expect(stub.Echo(kinds.AllKinds(f_int32=3), timeout=5).f_int32 == 3, "echo")

    failures = run_checks(locals(), selected)
    channel.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
