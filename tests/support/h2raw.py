"""A raw HTTP/2 client for tests: ``h2`` (client side, its own checks off) on a blocking socket, plus a frame
reader, so a test can send what a well-behaved client never would (bad pseudo-headers, floods, resets) and
see exactly which frames the server answers with (RST_STREAM codes, GOAWAY, END_STREAM or not)."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, ResponseReceived, StreamEnded, StreamReset
from h2.exceptions import ProtocolError

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GOAWAY, RST_STREAM = 7, 3


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


def parse_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every whole frame in ``data`` (server bytes, no preface)."""
    out = []
    pos = 0
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos:pos + 3], "big")
        if len(data) - pos - 9 < length:
            break
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        out.append((data[pos + 3], data[pos + 4], sid, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return out


def goaway_code(frames: list[tuple[int, int, int, bytes]]) -> int | None:
    for kind, _, _, payload in frames:
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None


def rst_codes(frames: list[tuple[int, int, int, bytes]]) -> dict[int, int]:
    return {sid: int.from_bytes(p[:4], "big") for kind, _, sid, p in frames if kind == RST_STREAM}


class RawH2:
    """One client connection. ``conn`` is the client-side state machine (validation off)."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, settings: dict[int, int] | None = None,
                 timeout: float = 10.0) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
            self.sock: socket.socket = tls.wrap_socket(raw, server_hostname="localhost")
            assert self.sock.selected_alpn_protocol() == "h2"  # type: ignore[attr-defined]
        else:
            self.sock = raw
        self.conn = H2Connection(H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.closed = False
        self.stopped = False  # the client state machine gave up: bytes are only recorded
        self.received = b""  # every byte the server sent (after the handshake), for parse_frames

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, path: str, authority: str, method: str = "GET", extra: list[tuple[bytes, bytes]] | None = None,
                end: bool = True, headers: list[tuple[bytes, bytes]] | None = None) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = headers if headers is not None else [
            (b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
            (b":path", path.encode()), *(extra or [])]
        self.conn.send_headers(sid, hdrs, end_stream=end)
        self.flush()
        return sid

    def read(self, timeout: float) -> list[Any]:
        """Events from one read (empty on timeout); sets ``closed`` at EOF."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return []
        except (ConnectionResetError, ssl.SSLError, OSError):
            self.closed = True
            return []
        if not data:
            self.closed = True
            return []
        self.received += data
        if self.stopped:
            return []
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:  # e.g. frames after the server's GOAWAY: keep the bytes, answer nothing
            self.stopped = True
            self.conn.data_to_send()
            return []
        try:
            self.flush()  # our answers to what came (a SETTINGS ack...)
        except OSError:  # the server closed after what we read (a GOAWAY, then a reset): the bytes are kept
            self.closed = True
        return list(events)

    def collect(self, until: Any, timeout: float = 10.0) -> list[Any]:
        """Read events until ``until(event)`` is true for one of them, the connection closes or time runs out."""
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            evs = self.read(min(0.5, max(0.01, deadline - time.monotonic())))
            out.extend(evs)
            if any(until(e) for e in evs):
                break
        return out

    def drain(self, timeout: float) -> None:
        """Read until the server closes or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.read(0.2)

    def get(self, path: str, authority: str, timeout: float = 10.0) -> tuple[int, bytes, str]:
        """(status, body, how it ended: 'end' | 'reset:<code>' | 'closed')."""
        sid = self.request(path, authority)
        status = 0
        body = b""
        evs = self.collect(lambda e: isinstance(e, StreamEnded | StreamReset | ConnectionTerminated)
                           and getattr(e, "stream_id", sid) == sid, timeout)
        end = "closed"
        for e in evs:
            if isinstance(e, ResponseReceived) and e.stream_id == sid:
                status = int(dict(e.headers)[b":status"])
            elif isinstance(e, DataReceived) and e.stream_id == sid:
                body += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, StreamEnded) and e.stream_id == sid:
                end = "end"
            elif isinstance(e, StreamReset) and e.stream_id == sid:
                end = f"reset:{int(e.error_code)}"
        self.flush()
        return status, body, end

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
