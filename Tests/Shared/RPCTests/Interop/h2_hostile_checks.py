#!/usr/bin/env python3
"""Hostile-peer HTTP/2 checks: a hand-driven HTTP/2 client (the `h2` library, plus raw frames
where h2 refuses to misbehave) talks prior-knowledge h2c to a Doorstep server serving
doorstep.testing.v1.TestService, and checks that the server answers protocol abuse with the
right status, isolates bad streams from good ones on the same connection, applies its
flood defences, and keeps serving fresh connections afterwards.

Usage: h2_hostile_checks.py HOST:PORT [CHECK ...] [options]
Prints one line per check ("ok NAME" or "FAIL NAME: why") and exits 1 if any failed.

With --tls CA_FILE every connection is TLS instead (ALPN h2, server name "localhost", the
server's certificate checked against CA_FILE) and requests say :scheme https; the checks are
the same. Servers the script starts itself then need the binary's TLS flags: pass them with
--server-arg (repeatable), e.g. --server-arg=--tls-cert-file --server-arg=PATH.

Two checks need a differently configured server: concurrent_stream_limit needs one started
with --max-concurrent-streams 8, the idle_timeout checks one with --idle-timeout-ms 500.
Pass their addresses with --limited-server / --idle-server, or let the script start them from
the rpc-test-server binary (--server-binary, default .build/debug/rpc-test-server) on
127.0.0.1, port 0; it kills what it started before exiting.

Options:
  --limited-server HOST:PORT   a server with --max-concurrent-streams 8
  --idle-server HOST:PORT      a server with --idle-timeout-ms 500
  --server-binary PATH         rpc-test-server to start those from when not given
  --server-arg ARG             one more argument for the servers the script starts (repeatable)
  --tls CA_FILE                speak TLS (ALPN h2) to every server, trusting CA_FILE
  --tls-server-name NAME       the name the certificates are checked for (default localhost)
  -v, --verbose                print what the server did ("note NAME: ...") for each check
"""

import argparse
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.parse

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (ConnectionTerminated, DataReceived, PingAckReceived, RemoteSettingsChanged,
                       ResponseReceived, StreamEnded, StreamReset, TrailersReceived, WindowUpdated)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes

# A child started from a Swift test inherits the spawning thread's signal mask, where
# SwiftNIO/Dispatch block most signals (SIGTERM included): unblock them, or this process
# cannot be stopped and gRPC's own machinery misbehaves.
import signal  # noqa: E402
signal.pthread_sigmask(signal.SIG_SETMASK, [])

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
DEFAULT_BINARY = os.path.join(ROOT, ".build", "debug", "rpc-test-server")

IO_TIMEOUT = 5.0          # every socket operation
CHECK_TIME_LIMIT = 60     # seconds; SIGALRM ends a check that somehow overruns
# Seconds from the first abusive frame to the server's GOAWAY, as a bound against a server
# that does not cut the peer off at all. What this check asserts is how far the server lets the
# peer get (resets and streams processed: the budget's burst of 10 plus its refill of 1/s over
# the flood's duration), which machine load does not change; the time it takes (3-8 ms on
# loopback) is printed with -v and reported as a measurement, not asserted tightly: a loaded
# or sanitized build stretches every round trip the peer waits for.
FLOOD_CUT_OFF = 10.0
RESET_BURST, RESET_REFILL_PER_SECOND = 10, 1

SERVICE = "/doorstep.testing.v1.TestService/"
ECHO = SERVICE + "Echo"
SLEEP = SERVICE + "Sleep"
CHAT = SERVICE + "Chat"

# HTTP/2 frame types and flags (RFC 9113 §6).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 11
NOTES = []


class Failed(Exception):
    pass


class CheckTimeout(Exception):
    pass


def expect(condition, why):
    if not condition:
        raise Failed(why)


def note(text):
    NOTES.append(text)


def error_name(code):
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


# MARK: Protobuf and gRPC framing, by hand

def varint(value):
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_varint(field, value):
    return varint(field << 3) + varint(value)


def pb_bytes(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def all_kinds(i, text=None):
    """AllKinds{f_int64 = i, f_int32 = 7, f_string = text}: fields in number order, default
    values left out, as any proto3 encoder writes them."""
    body = (pb_varint(3, i) if i else b"") + pb_varint(5, 7)
    if text is not None:
        body += pb_bytes(9, text.encode())
    return body


def parse_fields(data):
    """Top-level protobuf fields as (number, wire type, value); raises on malformed input."""
    fields, i = [], 0

    def read_varint():
        nonlocal i
        shift = value = 0
        while True:
            expect(i < len(data), "truncated varint in the response")
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(data):
        key = read_varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields.append((number, wire, read_varint()))
        elif wire == 2:
            length = read_varint()
            fields.append((number, wire, bytes(data[i:i + length])))
            i += length
        elif wire == 1:
            fields.append((number, wire, bytes(data[i:i + 8])))
            i += 8
        elif wire == 5:
            fields.append((number, wire, bytes(data[i:i + 4])))
            i += 4
        else:
            raise Failed(f"response has wire type {wire}")
    expect(i == len(data), "response message overruns its length")
    return sorted(fields)


def grpc_frame(message, flag=0, length=None):
    return struct.pack(">BI", flag, len(message) if length is None else length) + message


def grpc_messages(data):
    """Splits a response body into (flag, message) pairs; raises if it ends inside one."""
    messages, i = [], 0
    while i < len(data):
        expect(len(data) - i >= 5, f"response body ends inside a message prefix: {bytes(data[i:])!r}")
        flag, length = struct.unpack(">BI", data[i:i + 5])
        expect(len(data) - i - 5 >= length, "response body ends inside a message")
        messages.append((flag, bytes(data[i + 5:i + 5 + length])))
        i += 5 + length
    return messages


# MARK: Transport: plaintext (prior-knowledge h2c) or TLS with ALPN h2

class Transport:
    """How connections are made: set once from the command line."""
    tls = None              # ssl.SSLContext when --tls is given
    server_name = "localhost"
    scheme = "http"

    @classmethod
    def use_tls(cls, ca_file, server_name):
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(["h2"])
        cls.tls, cls.server_name, cls.scheme = context, server_name, "https"


class Closed(Exception):
    """The server closed the connection (EOF, reset, or the end of the TLS session)."""


def connect(address):
    """A connected socket (TLS-wrapped with --tls, after checking that ALPN chose h2)."""
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=IO_TIMEOUT)
    # Frames go out when written: timings measure the server, not Nagle's algorithm here.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if Transport.tls is not None:
        try:
            sock = Transport.tls.wrap_socket(sock, server_hostname=Transport.server_name)
        except (ssl.SSLError, OSError):
            sock.close()
            raise
        protocol = sock.selected_alpn_protocol()
        if protocol != "h2":
            sock.close()
            raise Failed(f"TLS to {address}: ALPN chose {protocol!r}, not h2")
    sock.settimeout(IO_TIMEOUT)
    return sock


def wait_readable(sock, timeout):
    """True when a receive will not block: bytes on the socket, or already decrypted ones
    waiting inside the TLS layer (which select cannot see)."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    ready, _, _ = select.select([sock], [], [], max(timeout, 0))
    return bool(ready)


def receive(sock, nonblocking=False):
    """Bytes that arrived (b"" when a nonblocking read finds none); raises Closed."""
    try:
        if nonblocking:
            sock.setblocking(False)
        data = sock.recv(65536)
    except (BlockingIOError, ssl.SSLWantReadError, socket.timeout):
        return b""
    except ssl.SSLZeroReturnError:
        raise Closed("EOF")
    except (ConnectionResetError, ssl.SSLError) as error:
        raise Closed("connection reset" if isinstance(error, ConnectionResetError) else f"TLS: {error}")
    finally:
        if nonblocking:
            sock.settimeout(IO_TIMEOUT)
    if not data:
        raise Closed("EOF")
    return data


def send_all(sock, data):
    """Writes all of `data`; raises Closed if the server has gone."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as error:
        raise Closed(f"{type(error).__name__} on send")


# MARK: Raw frames (for what h2 refuses to send)

def frame(kind, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id & 0x7FFFFFFF) + payload


def hpack_literal(name, value):
    """Literal header field without indexing, new name (RFC 7541 §6.2.2): touches no dynamic
    table, so it is valid whatever the connection's HPACK state."""
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def parse_frames(buffer):
    """Complete frames in `buffer` as (type, flags, stream id, payload), and the remainder."""
    frames, i = [], 0
    while len(buffer) - i >= 9:
        length = int.from_bytes(buffer[i:i + 3], "big")
        if len(buffer) - i - 9 < length:
            break
        kind, flags = buffer[i + 3], buffer[i + 4]
        stream_id = int.from_bytes(buffer[i + 5:i + 9], "big") & 0x7FFFFFFF
        frames.append((kind, flags, stream_id, bytes(buffer[i + 9:i + 9 + length])))
        i += 9 + length
    return frames, buffer[i:]


def describe_frames(frames):
    names = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE"}
    parts = []
    for kind, flags, stream_id, payload in frames:
        text = f"{names.get(kind, kind)}(stream {stream_id}, flags 0x{flags:x}"
        if kind == GOAWAY and len(payload) >= 8:
            last, code = struct.unpack(">II", payload[:8])
            text += f", last {last & 0x7FFFFFFF}, {error_name(code)}"
        elif kind == RST_STREAM and len(payload) == 4:
            text += f", {error_name(struct.unpack('>I', payload)[0])}"
        parts.append(text + ")")
    return ", ".join(parts) or "no frames"


class RawConnection:
    """A socket that speaks bytes; reads frames the server sends and notices when it closes."""

    def __init__(self, address):
        self.sock = connect(address)
        self.buffer = b""
        self.frames = []
        self.goaway_at = None       # time.monotonic() when the first GOAWAY was read
        self.closed = False
        self.closed_at = None
        self.close_reason = None

    def _closed(self, reason):
        if not self.closed:
            self.closed, self.closed_at, self.close_reason = True, time.monotonic(), reason

    def send(self, data):
        try:
            send_all(self.sock, data)
            return True
        except Closed as closed:
            self._closed(str(closed))
            return False

    def _read_once(self, timeout):
        """Reads one chunk if one arrives within `timeout`; returns its frames."""
        if not wait_readable(self.sock, timeout):
            return []
        try:
            chunk = receive(self.sock)
        except Closed as closed:
            self._closed(str(closed))
            return []
        frames, self.buffer = parse_frames(self.buffer + chunk)
        if self.goaway_at is None and any(kind == GOAWAY for kind, _, _, _ in frames):
            self.goaway_at = time.monotonic()
        self.frames += frames
        return frames

    def read(self, timeout):
        """Reads what arrives within `timeout` (or until the connection closes); returns the
        new frames."""
        new = []
        deadline = time.monotonic() + timeout
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            new += self._read_once(remaining)
        return new

    def read_until(self, condition, timeout):
        """Reads until `condition()` holds, the connection closes, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not condition() and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._read_once(remaining)
        return condition()

    def resets(self):
        """RST_STREAM frames from the server as {stream id: error code}."""
        return {stream_id: struct.unpack(">I", payload)[0]
                for kind, _, stream_id, payload in self.frames if kind == RST_STREAM and len(payload) == 4}

    def goaway(self):
        for kind, _, _, payload in self.frames:
            if kind == GOAWAY and len(payload) >= 8:
                last, code = struct.unpack(">II", payload[:8])
                return last & 0x7FFFFFFF, code
        return None

    def handshake(self):
        """Client preface and empty SETTINGS; waits for the server's SETTINGS and ACKs them."""
        self.send(PREFACE + frame(SETTINGS, 0, 0))
        deadline = time.monotonic() + IO_TIMEOUT
        while time.monotonic() < deadline and not self.closed:
            self.read(0.2)
            if any(kind == SETTINGS and not flags & ACK for kind, flags, _, _ in self.frames):
                self.send(frame(SETTINGS, ACK, 0))
                return
        raise Failed(f"no SETTINGS from the server: {describe_frames(self.frames)}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# MARK: An h2 client

class Stream:
    def __init__(self):
        self.headers = None        # the first header block, as a dict
        self.header_list = None
        self.trailers = None
        self.data = bytearray()
        self.ended = False
        self.reset = None          # RST_STREAM error code from the server
        self.trailers_only = False

    def done(self):
        return self.ended or self.reset is not None

    def status(self):
        """grpc-status and decoded grpc-message, from the trailers or a Trailers-Only block."""
        block = self.trailers if self.trailers is not None else (self.headers if self.trailers_only else None)
        if block is None or "grpc-status" not in block:
            return None, None
        return int(block["grpc-status"]), urllib.parse.unquote(block.get("grpc-message", ""))

    def describe(self):
        if self.reset is not None:
            return f"RST_STREAM {error_name(self.reset)}"
        if not self.ended:
            return f"not finished (headers {self.header_list}, {len(self.data)} body bytes)"
        return (f"headers {self.header_list}, {len(self.data)} body bytes, trailers {self.trailers}"
                + (" (Trailers-Only)" if self.trailers_only else ""))


class Client:
    """One HTTP/2 connection driven by h2, with every socket operation under a timeout."""

    def __init__(self, address, handshake=True):
        self.address = address
        self.sock = connect(address)
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.streams = {}
        self.server_settings = None     # {SettingCodes: value} from the server's first SETTINGS
        self.connection_window_increment = 0
        self.goaway = None              # (error code, last stream id)
        self.goaway_at = None
        self.closed = False
        self.closed_at = None
        self.close_reason = None
        self.ping_acks = []
        self.h2_error = None
        self.ack_data = True            # False: never open our receive windows (a peer that does not read)
        self.conn.initiate_connection()
        self.flush()
        if handshake:
            expect(self.pump(lambda: self.server_settings is not None),
                   f"no SETTINGS from the server ({self.state()})")
            self.flush()  # our SETTINGS ACK

    def state(self):
        parts = []
        if self.goaway:
            parts.append(f"GOAWAY {error_name(self.goaway[0])} last stream {self.goaway[1]}")
        if self.closed:
            parts.append(f"connection closed ({self.close_reason})")
        if self.h2_error:
            parts.append(f"h2 error: {self.h2_error}")
        return ", ".join(parts) or "connection open"

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                send_all(self.sock, data)
            except Closed as closed:
                self._salvage()
                self._closed(str(closed))

    def _salvage(self):
        """The server closed while we wrote: handle what it sent before (e.g. its GOAWAY)."""
        try:
            while True:
                data = receive(self.sock, nonblocking=True)
                if not data:
                    return
                for event in self.conn.receive_data(data):
                    self._handle(event)
        except (Closed, OSError, ProtocolError):
            return

    def _closed(self, reason):
        if not self.closed:
            self.closed, self.closed_at, self.close_reason = True, time.monotonic(), reason

    def pump(self, until=lambda: False, timeout=IO_TIMEOUT):
        """Reads and handles frames until `until()` holds, the connection closes, or `timeout`."""
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                break
            if not wait_readable(self.sock, min(remaining, IO_TIMEOUT)):
                continue
            try:
                data = receive(self.sock)
            except Closed as closed:
                self._closed(str(closed))
                break
            if not data:
                continue
            try:
                events = self.conn.receive_data(data)
            except ProtocolError as error:
                self.h2_error = f"{type(error).__name__}: {error}"
                self.flush()
                self._closed("h2 protocol error")
                break
            for event in events:
                self._handle(event)
            self.flush()
        return until()

    def _handle(self, event):
        stream = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, RemoteSettingsChanged):
            if self.server_settings is None:
                self.server_settings = {code: change.new_value for code, change in event.changed_settings.items()}
        elif isinstance(event, ResponseReceived) and stream is not None:
            stream.header_list = list(event.headers)
            stream.headers = dict(event.headers)
            if event.stream_ended is not None:
                stream.trailers_only = True
        elif isinstance(event, TrailersReceived) and stream is not None:
            stream.trailers = dict(event.headers)
        elif isinstance(event, DataReceived):
            if stream is not None:
                stream.data += event.data
            if self.ack_data:
                try:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                except ProtocolError:
                    pass
        elif isinstance(event, StreamEnded) and stream is not None:
            stream.ended = True
        elif isinstance(event, StreamReset) and stream is not None:
            stream.reset = int(event.error_code)
        elif isinstance(event, WindowUpdated) and event.stream_id == 0:
            self.connection_window_increment += event.delta
        elif isinstance(event, ConnectionTerminated):
            self.goaway = (int(event.error_code), event.last_stream_id)
            self.goaway_at = time.monotonic()
        elif isinstance(event, PingAckReceived):
            self.ping_acks.append(event.ping_data)

    def request(self, path=ECHO, body=None, end_stream=True, method="POST",
                content_type="application/grpc", extra_headers=()):
        """Opens a stream: HEADERS, then `body` (bytes, already gRPC-framed) as DATA."""
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", Transport.scheme), (":path", path), (":authority", self.address),
                   ("content-type", content_type), ("te", "trailers"), *extra_headers]
        self.streams[stream_id] = Stream()
        self.conn.send_headers(stream_id, headers, end_stream=end_stream and not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=end_stream)
        self.flush()
        return stream_id

    def end(self, stream_id, body=b""):
        self.conn.send_data(stream_id, body, end_stream=True)
        self.flush()

    def wait(self, stream_id, timeout=IO_TIMEOUT):
        stream = self.streams[stream_id]
        self.pump(stream.done, timeout)
        expect(stream.done(), f"stream {stream_id} did not finish within {timeout}s "
                              f"({stream.describe()}; {self.state()})")
        return stream

    def call(self, path, message, timeout=IO_TIMEOUT, **kwargs):
        return self.wait(self.request(path, grpc_frame(message), **kwargs), timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# MARK: Assertions

def expect_status(stream, code, message_part=None, what="stream"):
    status, message = stream.status()
    expect(status is not None, f"{what}: expected grpc-status {code}, got {stream.describe()}")
    expect(status == code, f"{what}: expected grpc-status {code}, got {status} ({message!r})")
    if message_part is not None:
        expect(message_part in message, f"{what}: expected grpc-message containing {message_part!r}, got {message!r}")


def expect_trailers_only(stream, code, what="stream"):
    expect(stream.reset is None, f"{what}: {stream.describe()}")
    expect(stream.trailers_only, f"{what}: expected Trailers-Only (one HEADERS with END_STREAM), got {stream.describe()}")
    expect(not stream.data, f"{what}: Trailers-Only response carries {len(stream.data)} body bytes")
    expect(stream.headers.get(":status") == "200", f"{what}: :status {stream.headers.get(':status')}")
    expect(stream.headers.get("content-type", "").startswith("application/grpc"),
           f"{what}: content-type {stream.headers.get('content-type')!r}")
    expect_status(stream, code, what=what)


def expect_echo(stream, request_message, what="echo"):
    expect(stream.reset is None, f"{what}: {stream.describe()}")
    expect_status(stream, 0, what=what)
    expect(stream.headers is not None and stream.headers.get(":status") == "200", f"{what}: {stream.describe()}")
    messages = grpc_messages(stream.data)
    expect(len(messages) == 1, f"{what}: expected one response message, got {len(messages)}")
    flag, body = messages[0]
    expect(flag == 0, f"{what}: response message flag {flag}")
    expect(parse_fields(body) == parse_fields(request_message),
           f"{what}: echoed {body!r}, sent {request_message!r}")


def still_serves(address, what="a fresh connection"):
    """A new connection's Echo succeeds within 5 s."""
    started = time.monotonic()
    try:
        client = Client(address)
    except OSError as error:
        raise Failed(f"{what}: cannot connect after the check: {error}")
    try:
        message = all_kinds(424242, "still here")
        expect_echo(client.call(ECHO, message), message, what=f"Echo on {what} after the check")
    finally:
        client.close()
    expect(time.monotonic() - started < 5.0, f"{what}: Echo took {time.monotonic() - started:.1f}s")


# MARK: Servers started by the script

class Servers:
    def __init__(self, binary, limited, idle, extra_args=()):
        self.binary = binary
        self.addresses = {"limited": limited, "idle": idle}
        self.args = {"limited": ["--max-concurrent-streams", "8"], "idle": ["--idle-timeout-ms", "500"]}
        self.extra_args = list(extra_args)  # e.g. the binary's TLS flags
        self.started = []

    def get(self, kind):
        if self.addresses[kind]:
            return self.addresses[kind]
        expect(self.binary and os.access(self.binary, os.X_OK),
               f"needs a server with {' '.join(self.args[kind])}: pass --{kind}-server HOST:PORT or build "
               f"rpc-test-server ({self.binary})")
        process = subprocess.Popen([self.binary, "--host", "127.0.0.1", "--port", "0", *self.args[kind],
                                    *self.extra_args],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.started.append(process)
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline().decode(errors="replace").strip() if ready else ""
        expect(line.startswith("listening on "), f"rpc-test-server {' '.join(self.args[kind])} did not start: {line!r}")
        self.addresses[kind] = line[len("listening on "):]
        note(f"started rpc-test-server pid {process.pid} {' '.join(self.args[kind])} on {self.addresses[kind]}")
        return self.addresses[kind]

    def stop(self):
        for process in self.started:
            if process.poll() is None:
                process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if process.stdout:
                process.stdout.close()


# MARK: Checks

def make_checks(address, servers):
    def check_settings_advertised():
        client = Client(address)
        try:
            settings = client.server_settings
            expected = {SettingCodes.MAX_CONCURRENT_STREAMS: 256, SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
                        SettingCodes.MAX_HEADER_LIST_SIZE: 16384}
            for code, value in expected.items():
                expect(settings.get(code) == value, f"{code.name} is {settings.get(code)}, expected {value} "
                                                    f"(server SETTINGS: {settings})")
            # The connection-level receive window is raised to 4 MiB with a WINDOW_UPDATE on stream 0.
            client.pump(lambda: client.connection_window_increment > 0, 1.0)
            expect(65535 + client.connection_window_increment == 4 << 20,
                   f"connection window is {65535 + client.connection_window_increment}, expected {4 << 20}")
        finally:
            client.close()

    def check_wrong_content_type():
        client = Client(address)
        try:
            stream = client.call(ECHO, all_kinds(1), content_type="text/plain")
            expect(stream.reset is None and stream.headers is not None, stream.describe())
            expect(stream.headers.get(":status") == "415", f"expected :status 415, got {stream.describe()}")
        finally:
            client.close()
        still_serves(address)

    def check_non_post():
        client = Client(address)
        try:
            stream = client.wait(client.request(ECHO, method="GET"))
            expect(stream.reset is None and stream.headers is not None, stream.describe())
            expect(stream.headers.get(":status") == "405", f"expected :status 405, got {stream.describe()}")
        finally:
            client.close()
        still_serves(address)

    def check_grpc_encoding_gzip():
        client = Client(address)
        try:
            stream = client.call(ECHO, all_kinds(1), extra_headers=[("grpc-encoding", "gzip")])
            expect_status(stream, 12)
            block = stream.trailers if stream.trailers is not None else stream.headers
            accept = (stream.headers or {}).get("grpc-accept-encoding") or block.get("grpc-accept-encoding")
            expect(accept is not None, f"no grpc-accept-encoding header: {stream.describe()}")
            expect("identity" in [part.strip() for part in accept.split(",")], f"grpc-accept-encoding {accept!r}")
            expect("gzip" not in accept, f"grpc-accept-encoding {accept!r} offers the refused gzip")
        finally:
            client.close()
        still_serves(address)

    def check_unknown_method():
        client = Client(address)
        try:
            stream = client.call(SERVICE + "Nope", b"")
            expect_trailers_only(stream, 12, "unknown method")
            stream = client.call("/no.such.Service/Call", b"")
            expect_trailers_only(stream, 12, "unknown service")
        finally:
            client.close()
        still_serves(address)

    def isolated(bad_streams):
        """Stream A (valid Echo) stays open while the bad streams fail; then A completes."""
        client = Client(address)
        try:
            good = all_kinds(77, "good stream A")
            a = client.request(ECHO, grpc_frame(good), end_stream=False)
            bad = [(client.request(ECHO, body), code, what) for body, code, what in bad_streams]
            for stream_id, code, what in bad:
                stream = client.wait(stream_id)
                expect(stream.reset is None, f"{what}: {stream.describe()}")
                expect_status(stream, code, what=what)
            expect(not client.streams[a].done(), f"stream A ended with the bad ones: {client.streams[a].describe()}")
            client.end(a)
            expect_echo(client.wait(a), good, what="stream A (valid Echo on the same connection)")
        finally:
            client.close()
        still_serves(address)

    def check_bad_prefix_isolated():
        isolated([(grpc_frame(all_kinds(1), flag=1), 13, "stream B (compressed flag 1, no grpc-encoding)"),
                  (grpc_frame(all_kinds(2), flag=7), 13, "stream C (invalid flag 7)")])

    def check_malformed_protobuf_isolated():
        isolated([(grpc_frame(b"\xff\xff\xff"), 3, "stream B (invalid protobuf)")])

    def check_invalid_utf8_field():
        client = Client(address)
        try:
            expect_status(client.call(ECHO, pb_bytes(9, b"\xff")), 3, "f_string", what="f_string = 0xff")
        finally:
            client.close()
        still_serves(address)

    def check_no_request_message():
        client = Client(address)
        try:
            expect_status(client.wait(client.request(ECHO)), 13, what="HEADERS with END_STREAM, no DATA")
            # The same with an empty DATA frame carrying END_STREAM.
            stream_id = client.request(ECHO, end_stream=False)
            client.end(stream_id)
            expect_status(client.wait(stream_id), 13, what="empty DATA with END_STREAM")
        finally:
            client.close()
        still_serves(address)

    def check_two_request_messages():
        client = Client(address)
        try:
            body = grpc_frame(all_kinds(1)) + grpc_frame(all_kinds(2))
            expect_status(client.wait(client.request(ECHO, body)), 13, what="two messages in one DATA frame")
            stream_id = client.request(ECHO, grpc_frame(all_kinds(1)), end_stream=False)
            client.end(stream_id, grpc_frame(all_kinds(2)))
            expect_status(client.wait(stream_id), 13, what="two messages in two DATA frames")
        finally:
            client.close()
        still_serves(address)

    def check_truncated_message():
        client = Client(address)
        try:
            stream = client.wait(client.request(ECHO, grpc_frame(b"\x28\x07\x18", length=10)))
            expect_status(stream, 13, what="prefix announces 10 bytes, 3 sent")
            stream = client.wait(client.request(ECHO, b"\x00\x00\x00"))
            expect_status(stream, 13, what="stream ends inside the 5-byte prefix")
        finally:
            client.close()
        still_serves(address)

    def check_oversize_announced():
        client = Client(address)
        try:
            # Prefix announcing 5 MiB and 100 bytes of it, stream left open: the answer must not
            # wait for the rest of the body.
            started = time.monotonic()
            stream_id = client.request(ECHO, grpc_frame(b"\x00" * 100, length=5 << 20), end_stream=False)
            stream = client.wait(stream_id, timeout=3.0)
            expect(stream.reset is None, f"oversize: {stream.describe()}")
            expect_status(stream, 8, what="message announced at 5 MiB")
            note(f"grpc-status 8 after {time.monotonic() - started:.3f}s with the body still open")
            # The connection itself is still usable.
            message = all_kinds(5, "after oversize")
            expect_echo(client.call(ECHO, message), message, what="Echo on the same connection")
        finally:
            client.close()
        still_serves(address)

    def check_header_list_too_large():
        client = Client(address)
        try:
            stream_id = client.request(ECHO, grpc_frame(all_kinds(1)), extra_headers=[("x-big", "v" * (20 << 10))])
            stream = client.streams[stream_id]
            client.pump(stream.done, IO_TIMEOUT)
            expect(not client.closed and client.goaway is None,
                   f"the connection ended instead of the stream: {client.state()}")
            refused = stream.reset is not None or (stream.headers or {}).get(":status") == "431"
            expect(refused, f"20 KiB header accepted: {stream.describe()}")
            note(f"oversized header list answered with {stream.describe()}")
            message = all_kinds(13, "after big header")
            expect_echo(client.call(ECHO, message), message, what="Echo on the same connection")
        finally:
            client.close()
        still_serves(address)

    def check_concurrent_stream_limit():
        """RFC 9113 §5.1.2: streams opened beyond the acknowledged SETTINGS_MAX_CONCURRENT_STREAMS
        get RST_STREAM(REFUSED_STREAM); the streams within the limit and the connection carry on."""
        limited = servers.get("limited")
        client = Client(limited)
        try:
            advertised = client.server_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS)
            expect(advertised == 8, f"{limited} advertises MAX_CONCURRENT_STREAMS {advertised}, expected 8")
            started = time.monotonic()
            sleeps = [client.request(SLEEP, grpc_frame(pb_varint(1, 2000))) for _ in range(8)]
            # h2 would refuse to exceed the limit: make it believe the server allowed more.
            client.conn.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 1 << 20
            client.conn.remote_settings.acknowledge()
            extra = [client.request(SLEEP, grpc_frame(pb_varint(1, 10))) for _ in range(4)]
            client.pump(lambda: all(client.streams[s].done() for s in extra), 1.5)
            refused_after = time.monotonic() - started
            client.pump(lambda: all(client.streams[s].done() for s in sleeps), 6.0)
            elapsed = time.monotonic() - started
            outcomes = [client.streams[stream_id] for stream_id in sleeps]
            completed = [stream for stream in outcomes if stream.done() and stream.reset is None]
            others = sorted(set(stream.describe() for stream in outcomes if stream not in completed))
            report = (f"streams {extra} over the limit: {[client.streams[s].describe() for s in extra]} "
                      f"after {refused_after:.2f}s; of the 8 Sleep(2000) streams {len(completed)} completed "
                      f"(grpc-status {[stream.status()[0] for stream in completed]}), the others: {others}; "
                      f"{client.state()}; {elapsed:.2f}s")
            note(report)
            for stream_id in extra:
                expect(client.streams[stream_id].reset == ErrorCodes.REFUSED_STREAM,
                       f"stream {stream_id} over the limit of 8 was not refused with RST_STREAM(REFUSED_STREAM): {report}")
            expect(refused_after < 1.0, f"the refusals came only after {refused_after:.2f}s: {report}")
            expect(client.goaway is None and not client.closed, f"the connection did not survive: {report}")
            for index, stream in enumerate(outcomes):
                expect(stream.reset is None and stream.status()[0] == 0,
                       f"Sleep stream {index + 1} of 8 did not complete OK: {report}")
            expect(elapsed >= 1.9, f"the 8 sleeps returned after {elapsed:.2f}s, before 2 s")
            # The connection still serves: a new stream within the limit succeeds.
            message = all_kinds(21, "after the refusals")
            expect_echo(client.call(ECHO, message), message, what="Echo on the same connection after the refusals")
        finally:
            client.close()
        still_serves(limited)

    def check_rapid_reset():
        client = Client(address)
        sent = 0
        try:
            headers = [(":method", "POST"), (":scheme", Transport.scheme), (":path", ECHO), (":authority", address),
                       ("content-type", "application/grpc"), ("te", "trailers")]
            started = time.monotonic()
            while sent < 3000 and not client.closed and client.goaway is None and time.monotonic() - started < 20:
                try:
                    for _ in range(100):
                        stream_id = client.conn.get_next_available_stream_id()
                        client.conn.send_headers(stream_id, headers)
                        client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
                        sent += 1
                except ProtocolError as error:  # h2 will not open streams after GOAWAY
                    client.h2_error = f"{type(error).__name__}: {error}"
                    break
                client.flush()
                client.pump(timeout=0.001)
            # What did the server do? Give it a moment to react to the tail of the burst.
            client.pump(lambda: client.closed, 2.0)
            reaction = client.state()
            if client.goaway is not None:
                reaction += f" (GOAWAY {time.monotonic() - started:.2f}s in)"
            note(f"sent {sent} HEADERS+RST_STREAM(CANCEL) pairs; server: {reaction}")
            if not client.closed and client.goaway is None:
                # It chose to keep serving this connection: then it must really serve it.
                message = all_kinds(15, "after burst")
                expect_echo(client.call(ECHO, message), message, what="Echo on the burst connection")
            elif client.goaway is not None:
                # ENHANCE_YOUR_CALM from our peer-error budget; INTERNAL_ERROR is what nghttp2
                # 1.52's stream-reset rate limiter (CVE-2023-44487 backport) sends.
                expect(client.goaway[0] in (ErrorCodes.ENHANCE_YOUR_CALM, ErrorCodes.NO_ERROR,
                                            ErrorCodes.PROTOCOL_ERROR, ErrorCodes.INTERNAL_ERROR),
                       f"GOAWAY with unexpected error {error_name(client.goaway[0])}")
        finally:
            client.close()
        still_serves(address)

    def provoking_stream(stream_id, variant):
        """A request the server must answer by resetting its stream (RST_STREAM from the
        server, the MadeYouReset primitive, CVE-2025-8671), one of four ways."""
        block = (hpack_literal(":method", "POST") + hpack_literal(":scheme", Transport.scheme)
                 + hpack_literal(":path", ECHO) + hpack_literal(":authority", address)
                 + hpack_literal("content-type", "application/grpc") + hpack_literal("te", "trailers"))
        request = grpc_frame(all_kinds(1))
        kind = variant % 4
        if kind == 0:
            # A complete Echo request (the server starts the call), then a WINDOW_UPDATE that
            # overflows the stream's send window past 2^31-1: FLOW_CONTROL_ERROR.
            return (frame(HEADERS, END_HEADERS, stream_id, block) + frame(DATA, END_STREAM, stream_id, request)
                    + frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", 0x7FFFFFFF)))
        if kind == 1:
            # content-length 10 on a request that ends with its HEADERS: PROTOCOL_ERROR.
            return frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block + hpack_literal("content-length", "10"))
        if kind == 2:
            # More DATA than the content-length announced: PROTOCOL_ERROR while reading DATA.
            return (frame(HEADERS, END_HEADERS, stream_id, block + hpack_literal("content-length", "3"))
                    + frame(DATA, END_STREAM, stream_id, request))
        # A connection-specific header field, which HTTP/2 forbids: PROTOCOL_ERROR.
        return frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block + hpack_literal("connection", "keep-alive"))

    def check_made_you_reset():
        """Streams the server itself must reset, as a flood: the server cuts the peer off
        (GOAWAY ENHANCE_YOUR_CALM, then closes) within FLOOD_CUT_OFF of the first one. Two
        paces: all at once in one write, and one per round trip (the next stream only after
        the previous one's RST_STREAM arrived: the slowest pace that still floods, and the one
        that shows how many resets the server allows)."""
        for paced in (False, True):
            pace = "one per round trip" if paced else "in one write"
            raw = RawConnection(address)
            try:
                raw.handshake()
                handshake_frames = len(raw.frames)
                started = time.monotonic()
                sent = 0
                if paced:
                    while (sent < 500 and not raw.closed and raw.goaway() is None
                           and time.monotonic() - started < 5):
                        stream_id = 2 * sent + 1
                        if not raw.send(provoking_stream(stream_id, sent)):
                            break
                        sent += 1
                        raw.read_until(lambda: raw.goaway() is not None or stream_id in raw.resets(), IO_TIMEOUT)
                else:
                    sent = 500
                    raw.send(b"".join(provoking_stream(2 * index + 1, index) for index in range(sent)))
                raw.read_until(lambda: raw.goaway() is not None, 2.0)
                # Until the server closes (bounded generously: a loaded machine may take a while to
                # run the close; the cut-off itself is timed by the GOAWAY above).
                raw.read_until(lambda: False, IO_TIMEOUT)
                goaway = raw.goaway()
                resets = raw.resets()
                report = (f"{pace}: sent {sent} streams; {len(resets)} RST_STREAM "
                          f"({', '.join(sorted(set(error_name(code) for code in resets.values())))}); then "
                          f"{describe_frames([f for f in raw.frames[handshake_frames:] if f[0] != RST_STREAM][:3])}")
                if goaway is not None:
                    report += f" {raw.goaway_at - started:.3f}s in"
                report += f"; socket {raw.close_reason or 'open'}"
                if raw.closed:
                    report += f" {raw.closed_at - started:.3f}s in"
                note(report)
                expect(goaway is not None, f"no GOAWAY: {report}")
                expect(goaway[1] == ENHANCE_YOUR_CALM, f"GOAWAY with {error_name(goaway[1])}: {report}")
                expect(raw.goaway_at - started <= FLOOD_CUT_OFF,
                       f"GOAWAY {raw.goaway_at - started:.3f}s after the flood began, "
                       f"more than {FLOOD_CUT_OFF}s: {report}")
                expect(raw.closed, f"the connection stayed open after the GOAWAY: {report}")
                # Cut off after a few resets, right at the frame that exceeded the budget (not after
                # a whole read): the GOAWAY's last stream shows how far the server got.
                processed = (goaway[0] + 1) // 2
                expect(processed <= 25, f"the server processed {processed} streams before its GOAWAY: {report}")
                # The reset budget is what bounds the flood, whatever the pace (two of slack: the
                # reset that exceeds it, and timing at the edges).
                allowed = RESET_BURST + int(RESET_REFILL_PER_SECOND * (raw.goaway_at - started)) + 2
                expect(len(resets) <= allowed,
                       f"the server reset {len(resets)} streams before its GOAWAY, more than {allowed}: {report}")
            finally:
                raw.close()
        still_serves(address)

    def check_continuation_flood():
        raw = RawConnection(address)
        try:
            raw.handshake()
            block = (hpack_literal(":method", "POST") + hpack_literal(":scheme", Transport.scheme)
                     + hpack_literal(":path", ECHO) + hpack_literal(":authority", address)
                     + hpack_literal("content-type", "application/grpc"))
            raw.send(frame(HEADERS, 0, 1, block))  # no END_HEADERS
            accepted = 0
            for index in range(100):
                if not raw.send(frame(CONTINUATION, 0, 1, hpack_literal(f"x-flood-{index}", "y" * 10))):
                    break
                accepted += 1
                # Up to the limit (8) a short look for an early reaction; past it, the server has
                # had its cue, so give it time to answer (a slow, sanitized or loaded server must
                # not be counted as taking frames it had no time to refuse).
                if accepted <= 8:
                    raw.read(0.01)
                else:
                    raw.read_until(lambda: raw.goaway() is not None, IO_TIMEOUT)
                if raw.closed or raw.goaway():
                    break
            raw.read(2.0)
            goaway = raw.goaway()
            expect(raw.closed or goaway is not None,
                   f"connection still open after {accepted} CONTINUATION frames without END_HEADERS; "
                   f"server sent {describe_frames(raw.frames)}")
            note(f"server ended the connection after {accepted} CONTINUATION frames were written: "
                 f"{describe_frames(raw.frames)}; socket {raw.close_reason or 'open'}")
            expect(accepted <= 50, f"the server took {accepted} CONTINUATION frames (limit 8) before reacting")
        finally:
            raw.close()
        still_serves(address)

    def check_invalid_preface():
        raw = RawConnection(address)
        try:
            raw.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + b"\x00garbage" * 8)
            raw.read(IO_TIMEOUT)
            expect(raw.closed, f"connection still open {IO_TIMEOUT}s after an invalid preface; "
                               f"server sent {describe_frames(raw.frames)}")
            note(f"invalid preface: {describe_frames(raw.frames)}, then {raw.close_reason}")
        finally:
            raw.close()
        still_serves(address)

    def check_ping():
        client = Client(address)
        try:
            for payload in (b"\x00\x01\x02\x03\xfc\xfd\xfe\xff", b"doorstep"):
                client.conn.ping(payload)
                client.flush()
                expect(client.pump(lambda: payload in client.ping_acks),
                       f"no PING ACK for {payload!r} (acks {client.ping_acks}; {client.state()})")
        finally:
            client.close()

    def check_idle_timeout():
        idle = servers.get("idle")
        started = time.monotonic()
        client = Client(idle)
        try:
            client.pump(lambda: client.closed, 3.0)
            expect(client.goaway is not None, f"no GOAWAY on an idle connection within 3 s ({client.state()})")
            expect(client.goaway[0] == ErrorCodes.NO_ERROR, f"idle GOAWAY carries {error_name(client.goaway[0])}")
            expect(client.closed, f"GOAWAY but the connection was not closed within 3 s ({client.state()})")
            goaway, closed = client.goaway_at - started, client.closed_at - started
            note(f"GOAWAY after {goaway:.3f}s, closed ({client.close_reason}) after {closed:.3f}s")
            expect(goaway >= 0.4, f"GOAWAY after {goaway:.3f}s, before the 500 ms idle timeout")
            expect(closed <= 2.0, f"closed after {closed:.3f}s, expected within ~2 s")
        finally:
            client.close()
        still_serves(idle)

    def check_idle_timeout_spares_active_streams():
        idle = servers.get("idle")
        client = Client(idle)
        try:
            stream = client.call(SLEEP, pb_varint(1, 1500))
            expect(stream.reset is None, f"Sleep(1500): {stream.describe()}; {client.state()}")
            expect_status(stream, 0, what="Sleep(1500) on a server with a 500 ms idle timeout")
            expect(client.goaway is None, f"GOAWAY while a call was running ({client.state()})")
            # Idle again: now the timeout applies.
            client.pump(lambda: client.closed, 3.0)
            expect(client.goaway is not None and client.closed,
                   f"not closed within 3 s of becoming idle ({client.state()})")
        finally:
            client.close()

    def check_idle_timeout_after_call():
        idle = servers.get("idle")
        client = Client(idle)
        try:
            message = all_kinds(19, "then idle")
            expect_echo(client.call(ECHO, message), message)
            finished = time.monotonic()
            # The connection has no open stream again: GOAWAY and close after ~500 ms.
            client.pump(lambda: client.closed, 3.0)
            expect(client.goaway is not None and client.closed,
                   f"connection not closed within 3 s of its only call finishing ({client.state()})")
            note(f"GOAWAY {client.goaway_at - finished:.3f}s and close {client.closed_at - finished:.3f}s after the call")
            expect(client.closed_at - finished <= 2.0, f"closed {client.closed_at - finished:.3f}s after the call")
        finally:
            client.close()
        still_serves(idle)

    def check_cancel_mid_call():
        client = Client(address)
        try:
            sleeper = client.request(SLEEP, grpc_frame(pb_varint(1, 5000)))
            client.pump(timeout=0.3)
            expect(not client.streams[sleeper].done(), f"Sleep(5000) ended early: {client.streams[sleeper].describe()}")
            client.conn.reset_stream(sleeper, ErrorCodes.CANCEL)
            client.flush()
            started = time.monotonic()
            message = all_kinds(20, "after cancel")
            expect_echo(client.call(ECHO, message), message, what="Echo on the same connection after the cancel")
            expect(time.monotonic() - started < 2.0, "the Echo waited for the cancelled call")
            expect(client.goaway is None and not client.closed, client.state())
        finally:
            client.close()
        still_serves(address)

    def check_many_streams_one_connection():
        client = Client(address)
        try:
            messages = {}
            for i in range(200):
                message = all_kinds(i, f"stream {i} " + "x" * (i % 17))
                messages[client.request(ECHO, grpc_frame(message))] = message
            for index, (stream_id, message) in enumerate(messages.items()):
                expect_echo(client.wait(stream_id, timeout=10.0), message, what=f"stream {index} (id {stream_id})")
            expect(client.goaway is None and not client.closed, client.state())
        finally:
            client.close()
        still_serves(address)

    def check_unread_responses():
        """A Chat whose responses the peer never reads (it opens no window for them): the server's
        handler waits once the stream's unsent backlog is full, so it stops taking requests too, and
        the peer can push only a few MiB however long it tries — not its whole 96 MiB through a
        buffer that grows with it. The connection stays up and the server keeps serving."""
        client = Client(address)
        client.ack_data = False
        try:
            leaf = grpc_frame(pb_bytes(1, b"x" * 16000))
            block = leaf * 64
            stream_id = client.request(CHAT, end_stream=False)
            target, sent = 96 << 20, 0
            last_progress = time.monotonic()
            while sent < target and time.monotonic() - last_progress < 2.0 and not client.closed:
                window = min(client.conn.local_flow_control_window(stream_id), client.conn.max_outbound_frame_size)
                if window <= 0:
                    client.pump(timeout=0.05)
                    continue
                start = sent % len(block)
                count = min(window, len(block) - start)
                client.conn.send_data(stream_id, block[start:start + count])
                client.flush()
                sent += count
                last_progress = time.monotonic()
            received = len(client.streams[stream_id].data)
            note(f"the peer pushed {sent >> 10} KiB of requests and got {received >> 10} KiB of responses before it stalled")
            expect(not client.closed and client.goaway is None, client.state())
            expect(sent < 24 << 20, f"the server kept taking requests whose responses nobody read: {sent >> 20} MiB pushed")
            expect(client.streams[stream_id].reset is None, client.streams[stream_id].describe())
            client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            client.flush()
        finally:
            client.close()
        still_serves(address)

    return {name[len("check_"):]: fn for name, fn in locals().items() if name.startswith("check_")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", help="HOST:PORT of a server with default settings")
    parser.add_argument("checks", nargs="*", help="checks to run (default: all)")
    parser.add_argument("--limited-server", help="HOST:PORT of a server with --max-concurrent-streams 8")
    parser.add_argument("--idle-server", help="HOST:PORT of a server with --idle-timeout-ms 500")
    parser.add_argument("--server-binary", default=os.environ.get("DOORSTEP_RPC_TEST_SERVER", DEFAULT_BINARY))
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for the servers the script starts (repeatable)")
    parser.add_argument("--tls", metavar="CA_FILE", help="speak TLS (ALPN h2) to every server, trusting CA_FILE")
    parser.add_argument("--tls-server-name", default="localhost", metavar="NAME",
                        help="the name the server certificates are checked for (default localhost)")
    parser.add_argument("-v", "--verbose", action="store_true")
    options = parser.parse_intermixed_args()
    if options.tls:
        Transport.use_tls(options.tls, options.tls_server_name)

    servers = Servers(options.server_binary, options.limited_server, options.idle_server, options.server_arg)
    checks = make_checks(options.address, servers)
    unknown = [name for name in options.checks if name not in checks]
    if unknown:
        print(f"unknown checks: {', '.join(unknown)}; known: {', '.join(checks)}", file=sys.stderr)
        sys.exit(2)

    def overrun(signum, frame):
        raise CheckTimeout(f"check overran {CHECK_TIME_LIMIT}s")

    signal.signal(signal.SIGALRM, overrun)
    failures = 0
    try:
        for name, fn in checks.items():
            if options.checks and name not in options.checks:
                continue
            NOTES.clear()
            signal.alarm(CHECK_TIME_LIMIT)
            try:
                fn()
                print(f"ok {name}", flush=True)
            except Failed as failure:
                failures += 1
                print(f"FAIL {name}: {failure}", flush=True)
            except Exception as error:  # noqa: BLE001 — report anything unexpected as a failure
                failures += 1
                print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
            finally:
                signal.alarm(0)
            if options.verbose:
                for text in NOTES:
                    print(f"note {name}: {text}", flush=True)
    finally:
        servers.stop()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
