"""HTTP/2-specific probes against `sluicegate serve` (server/h2), with raw frames: each defence verified by the frames
the server answers with, and by the connection (or the next stream) still being served where it must be.

Malformed requests are stream errors (RST_STREAM PROTOCOL_ERROR, the connection keeps serving); floods end the
connection with GOAWAY ENHANCE_YOUR_CALM; streams over the advertised limit are refused one by one."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from h2.events import ConnectionTerminated, RemoteSettingsChanged, StreamReset
from hpack import Encoder

from tests.integration.conftest import Origin
from tests.support.configs import publisher_config
from tests.support.h2raw import PREFACE, RawH2, frame, goaway_code, parse_frames, rst_codes
from tests.support.servers import ProxyProcess

PROTOCOL_ERROR, REFUSED_STREAM, ENHANCE_YOUR_CALM = 1, 7, 11
HEADERS, CONTINUATION, RST, SETTINGS, PING = 1, 9, 3, 4, 6
END_STREAM, END_HEADERS = 0x1, 0x4

EXTRA = """
[timeouts]
connect = 2.0
first_byte = 5.0
client_header = 2.0

[http2]
max_concurrent_streams = 10
reset_rate = 50
control_frame_rate = 50
"""


@pytest.fixture(scope="module")
def proxy(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    p = ProxyProcess(tmp_path_factory.mktemp("h2def"), publisher_config(origin.url, extra=EXTRA)).start()
    yield p
    p.stop()


def connect(p: ProxyProcess) -> RawH2:
    return RawH2(p.port)  # h2c prior knowledge: the same protocol as over TLS, frames easier to judge


def auth(p: ProxyProcess) -> str:
    return f"127.0.0.1:{p.port}"


def base_headers(p: ProxyProcess, path: str = "/page") -> list[tuple[bytes, bytes]]:
    return [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", auth(p).encode()), (b":path", path.encode())]


MALFORMED = {
    "missing :path": lambda h: [x for x in h if x[0] != b":path"],
    "missing :method": lambda h: [x for x in h if x[0] != b":method"],
    "duplicate :method": lambda h: [*h[:1], *h],
    "unknown pseudo-header": lambda h: [*h, (b":protocol", b"websocket")],
    "pseudo-header after a field": lambda h: [*h[:3], (b"accept", b"*/*"), h[3]],
    "uppercase field name": lambda h: [*h, (b"Accept", b"*/*")],
    "connection field": lambda h: [*h, (b"connection", b"keep-alive")],
    "transfer-encoding field": lambda h: [*h, (b"transfer-encoding", b"chunked")],
    "keep-alive field": lambda h: [*h, (b"keep-alive", b"timeout=5")],
    "upgrade field": lambda h: [*h, (b"upgrade", b"websocket")],
    "te other than trailers": lambda h: [*h, (b"te", b"gzip")],
    "CR in a value": lambda h: [*h, (b"x-a", b"a\r\nx-b: b")],
    "relative :path": lambda h: [*h[:3], (b":path", b"page")],
    "authority and host differ": lambda h: [*h, (b"host", b"evil.test")],
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request_is_a_stream_error(proxy: ProxyProcess, origin: Origin, case: str) -> None:
    h = connect(proxy)
    try:
        before = len(origin.log.requests)
        sid = h.request("", "", headers=MALFORMED[case](base_headers(proxy, "/echo")))
        evs = h.collect(lambda e: isinstance(e, StreamReset | ConnectionTerminated), timeout=5)
        assert [(e.stream_id, int(e.error_code)) for e in evs if isinstance(e, StreamReset)] == [
            (sid, PROTOCOL_ERROR)], evs
        assert len(origin.log.requests) == before  # nothing reached the origin
        assert h.get("/page", auth(proxy))[0] == 200  # the connection keeps serving
    finally:
        h.close()


def test_continuation_flood_ends_the_connection(proxy: ProxyProcess) -> None:
    h = connect(proxy)
    try:
        block = Encoder().encode(base_headers(proxy))
        h.send_raw(frame(HEADERS, END_STREAM, 1, block))  # no END_HEADERS: the block stays open
        try:
            for _ in range(200):  # 200 x 4 KiB = 800 KiB of a header block that never ends
                h.send_raw(frame(CONTINUATION, 0, 1, b"\x00" * 4096))
        except OSError:
            pass  # the server closed on us
        h.drain(5)
        assert h.closed
        assert goaway_code(parse_frames(h.received)) == ENHANCE_YOUR_CALM
    finally:
        h.close()


def test_hpack_bomb_ends_the_connection(proxy: ProxyProcess) -> None:
    """A 4 KiB value in the HPACK table, then referenced by 1-byte indices: 60 bytes on the wire would decode
    to 240 KiB of headers, over the advertised SETTINGS_MAX_HEADER_LIST_SIZE (64 KiB)."""
    h = connect(proxy)
    try:
        enc = Encoder()
        first = enc.encode([*base_headers(proxy), (b"x-big", b"a" * 4000)])
        bomb = first + bytes([0xBE]) * 60  # indexed field 62: the newest dynamic-table entry (x-big)
        h.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, 1, bomb))
        h.drain(5)
        assert h.closed
        assert goaway_code(parse_frames(h.received)) == ENHANCE_YOUR_CALM  # HPACK's decoded-size cap
    finally:
        h.close()


def test_rapid_reset_is_answered_with_goaway(proxy: ProxyProcess, origin: Origin) -> None:
    """CVE-2023-44487: HEADERS + RST_STREAM pairs as fast as possible."""
    h = connect(proxy)
    try:
        before = len(origin.log.requests)
        enc = Encoder()
        burst = b"".join(
            frame(HEADERS, END_STREAM | END_HEADERS, sid, enc.encode(base_headers(proxy, "/echo")))
            + frame(RST, 0, sid, (8).to_bytes(4, "big"))
            for sid in range(1, 2001, 2)
        )
        try:
            h.send_raw(burst)
        except OSError:
            pass
        h.drain(5)
        assert h.closed
        assert goaway_code(parse_frames(h.received)) == ENHANCE_YOUR_CALM
        assert len(origin.log.requests) - before < 120  # the budget: a burst of 100, not 1000 requests
    finally:
        h.close()


@pytest.mark.parametrize("kind", [SETTINGS, PING])
def test_control_frame_flood_is_answered_with_goaway(proxy: ProxyProcess, kind: int) -> None:
    h = connect(proxy)
    try:
        one = frame(SETTINGS, 0, 0, b"") if kind == SETTINGS else frame(PING, 0, 0, b"12345678")
        try:
            h.send_raw(one * 1000)
        except OSError:
            pass
        h.drain(5)
        assert h.closed
        assert goaway_code(parse_frames(h.received)) == ENHANCE_YOUR_CALM
    finally:
        h.close()


def test_a_few_pings_and_settings_are_fine(proxy: ProxyProcess) -> None:
    h = connect(proxy)
    try:
        h.send_raw(frame(PING, 0, 0, b"abcdefgh") * 5 + frame(SETTINGS, 0, 0) * 5)
        assert h.get("/page", auth(proxy))[0] == 200
        acks = [f for f in parse_frames(h.received) if f[0] == PING and f[1] & 1]
        assert len(acks) == 5
    finally:
        h.close()


def test_streams_over_the_limit_are_refused(proxy: ProxyProcess) -> None:
    h = connect(proxy)
    try:
        evs = h.collect(lambda e: isinstance(e, RemoteSettingsChanged), timeout=5)
        settings = next(e for e in evs if isinstance(e, RemoteSettingsChanged)).changed_settings
        assert settings[3].new_value == 10  # SETTINGS_MAX_CONCURRENT_STREAMS as configured
        # ignore the setting on purpose (the client's view of the limit is bypassed with raw frames)
        enc = Encoder()
        h.send_raw(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, sid,
                                  enc.encode(base_headers(proxy, f"/slow-head?tag=lim{sid}")))
                            for sid in range(1, 25, 2)))  # 12 streams that stay open
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(rst_codes(parse_frames(h.received))) < 2:
            h.read(0.2)
        assert rst_codes(parse_frames(h.received)) == {21: REFUSED_STREAM, 23: REFUSED_STREAM}
        assert not h.closed  # a refused stream is not a connection error
    finally:
        h.close()


def test_request_head_deadline(proxy: ProxyProcess) -> None:
    """The preface and then nothing: closed after [timeouts] client_header (2 s here)."""
    h = connect(proxy)
    try:
        t0 = time.monotonic()
        h.drain(6)
        assert h.closed and 1.5 < time.monotonic() - t0 < 5
    finally:
        h.close()


def test_a_header_block_left_open_is_cut_at_the_deadline(proxy: ProxyProcess) -> None:
    h = connect(proxy)
    try:
        assert h.get("/page", auth(proxy))[0] == 200  # a request was served: only the open block counts
        h.send_raw(frame(HEADERS, END_STREAM, 3, Encoder().encode(base_headers(proxy))))
        t0 = time.monotonic()
        h.drain(6)
        assert h.closed and 1.5 < time.monotonic() - t0 < 5
    finally:
        h.close()


def test_preface_must_be_exact(proxy: ProxyProcess) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(PREFACE[:10] + b"XXXXXXXXXXXXXX")  # starts like the preface, is not one
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 400")  # not the preface: HTTP/1.1, and not a valid request


def test_defences_show_in_metrics(proxy: ProxyProcess) -> None:
    """Runs after the probes above (same server): each answer is counted on the admin port."""
    import urllib.request

    h = connect(proxy)
    try:
        h.request("", "", headers=[(b":method", b"GET")])  # one more malformed stream, in case run alone
        h.collect(lambda e: isinstance(e, StreamReset), timeout=5)
        assert h.get("/page", auth(proxy))[0] == 200
    finally:
        h.close()
    with urllib.request.urlopen(f"{proxy.admin_url}/metrics", timeout=5) as r:
        text = r.read().decode()

    def value(line_start: str) -> float:
        return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line_start))

    assert value('sluicegate_http2_stream_resets_total{reason="malformed"}') >= 1
    assert value("sluicegate_http2_streams_total") >= 1
    assert value("sluicegate_http2_connections ") >= 0


def test_preface_and_h1_both_judged_byte_by_byte(proxy: ProxyProcess) -> None:
    """The hand-over waits while the first bytes are a prefix of the preface: a preface sent a byte at a time is
    h2, and an HTTP/1.1 request that starts with the same letter ("P", a byte at a time) stays HTTP/1.1."""
    import socket

    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        for b in PREFACE:
            s.sendall(bytes([b]))
            time.sleep(0.005)
        s.sendall(frame(SETTINGS, 0, 0))
        data = s.recv(65536)
        assert parse_frames(data)[0][0] == SETTINGS  # the server's preface: it speaks h2
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        req = f"POST /echo HTTP/1.1\r\nHost: {auth(proxy)}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        for b in req.encode():
            s.sendall(bytes([b]))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200") and b'"body_size": 2' in data
