"""What the native core guarantees beyond parity with uvicorn, over real sockets (and, for the exact number of
writes, over a recording transport): head and first chunk in one write, late bodies do not hold the head,
framing errors abort, backpressure bounds the app, the head size bound, the disconnect reaching a
``ClientWatch`` handler within a millisecond, the hand-off hook for another protocol."""

from __future__ import annotations

import asyncio
import gc
import socket
import statistics
import struct
import time
from typing import Any

import pytest

from sluicegate.edge.client import start_request
from sluicegate.server.h1.protocol import H1Protocol, ServerState
from tests.unit.server.h1_harness import connect, header, read_response, read_until_closed, serving, wait_for


class RecordingTransport:
    """Just enough of a transport to count the writes a response makes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: list[bytes]) -> None:
        self.writes.append(b"".join(parts))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 80)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


async def _run_one(app: Any, request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") -> RecordingTransport:
    transport = RecordingTransport()
    state = ServerState(app, header_timeout=5, keepalive_timeout=5, head_limit=65536)
    proto = H1Protocol(state, asyncio.get_running_loop())
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(request)
    for _ in range(5):
        await asyncio.sleep(0)
    for task in list(state.tasks):
        await task
    await asyncio.sleep(0)
    proto.connection_lost(None)
    return transport


async def test_head_and_first_chunk_in_one_write_then_one_write_per_chunk() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<p>one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two", "more_body": True})
        await send({"type": "http.response.body", "body": b"three", "more_body": False})

    t = await _run_one(app)
    assert len(t.writes) == 3
    assert t.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and t.writes[0].endswith(b"\r\n\r\n6\r\n<p>one\r\n")
    assert t.writes[1] == b"3\r\ntwo\r\n"
    assert t.writes[2] == b"5\r\nthree\r\n0\r\n\r\n"  # the last chunk and the terminating chunk together


async def test_whole_small_response_is_one_write() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    t = await _run_one(app)
    assert t.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]


async def test_an_answered_exchange_leaves_no_garbage_for_the_cyclic_collector() -> None:
    """The exchange's objects (the cycle, its scope with the disconnect hook, the headers) die by reference count
    when the app returns: a reference cycle among them left ~13 objects per request to the collector."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        watch, deadline = start_request(receive, send, has_body=False, scope=scope)  # registers the hook
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        deadline.close()
        watch.stop()

    await _run_one(app)  # warm-up: first-use caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        t = await _run_one(app, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        gc.collect()
        # Only this exchange's objects count: a transport or socket left behind by an earlier test can become
        # collectable inside the window, and it says nothing about the exchange (seen in CI).
        ours = ("Cycle", "ClientWatch", "Deadline")
        left = [type(o).__name__ for o in gc.garbage
                if type(o).__name__ in ours or (isinstance(o, dict) and o.get("path") == "/a")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert len(t.writes) == 3
    assert left == [], left


async def test_big_chunk_goes_out_in_one_writelines_with_its_framing() -> None:
    big = b"x" * 100_000

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": big, "more_body": False})

    t = await _run_one(app)
    assert len(t.writes) == 1 and t.writes[0].endswith(b"\r\n\r\n186a0\r\n" + big + b"\r\n0\r\n\r\n")


@pytest.mark.parametrize("extra", [b"toolong", b""])
async def test_body_not_matching_content_length_aborts(extra: bytes) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"ab" + extra})

    t = await _run_one(app)
    assert t.aborted and not any(b"ab" in w for w in t.writes)


async def test_bad_response_header_is_a_500_not_a_split_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-evil", b"a\r\nset-cookie: x=1")]})

    t = await _run_one(app)
    assert len(t.writes) == 1 and t.writes[0].startswith(b"HTTP/1.1 500") and b"set-cookie" not in t.writes[0]


async def test_response_aborted_after_the_head_aborts() -> None:
    from sluicegate.edge.asgi import ResponseAborted

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"some", "more_body": True})
        raise ResponseAborted("origin failed")

    t = await _run_one(app)
    assert t.aborted and not t.writes[-1].endswith(b"0\r\n\r\n")


class Switch:
    """The ``server.h2.Http2Switch`` interface: True = taken, False = HTTP/1.1, None = need more bytes."""

    def __init__(self) -> None:
        self.offers: list[bytes] = []

    def take(self, transport: Any, data: bytes, registry: Any) -> bool | None:
        self.offers.append(data)
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        if data.startswith(preface):
            return True
        return None if preface.startswith(data) else False


async def test_http2_switch_gets_the_first_bytes_once() -> None:
    switch = Switch()
    transport = RecordingTransport()
    state = ServerState(None, header_timeout=5, keepalive_timeout=5, head_limit=65536, http2=switch)
    proto = H1Protocol(state, asyncio.get_running_loop())
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(b"PRI * HTTP/2")  # a prefix: kept, asked again with the rest
    proto.data_received(b".0\r\n\r\nSM\r\n\r\n")
    assert switch.offers == [b"PRI * HTTP/2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]
    assert proto not in state.connections and transport.writes == []


async def test_http1_after_the_switch_said_no() -> None:
    switch = Switch()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = RecordingTransport()
    state = ServerState(app, header_timeout=5, keepalive_timeout=5, head_limit=65536, http2=switch)
    proto = H1Protocol(state, asyncio.get_running_loop())
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for task in list(state.tasks):
        await task
    await asyncio.sleep(0.01)
    assert len(switch.offers) == 1 and b"".join(transport.writes).count(b"HTTP/1.1 200") == 2


def test_head_is_on_the_wire_before_a_late_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(1.0)
        await send({"type": "http.response.body", "body": b"data: late\n\n"})

    with serving("native", app) as srv, connect(srv.port) as s:
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        t_head = time.monotonic() - t0
        rest = read_response(s, first)[1]
        t_body = time.monotonic() - t0
    assert first.startswith(b"HTTP/1.1 200") and b"data: late" not in first
    assert t_head < 0.3 and t_body >= 0.95 and rest == b"data: late\n\n"


def test_head_over_the_bound_is_431() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("must not be called")

    with serving("native", app, head_limit=4096) as srv, connect(srv.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(10):
            s.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
        data, _ = read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 431")


def test_send_waits_while_the_client_does_not_read() -> None:
    """A client that stops reading: the app's ``send`` stops returning once the transport's buffer is full
    (bounded), and resumes when the client reads."""
    progress: list[int] = []
    chunk = b"y" * 65536
    total = 400

    async def app(scope: Any, receive: Any, send: Any) -> None:
        length = b"%d" % (len(chunk) * total)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]})
        for i in range(total):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < total - 1})
            progress.append(i)

    with serving("native", app) as srv, connect(srv.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.0)
        stalled = len(progress)
        assert stalled < total // 2  # at most a few MB in kernel buffers + the transport's high-water mark
        got = 0
        while got < len(chunk) * total:
            data = s.recv(1 << 20)
            assert data
            got += len(data)
        assert wait_for(lambda: len(progress) == total)


@pytest.mark.parametrize("hooked", [True, False], ids=["disconnect-hook", "watch-task"])
def test_client_reset_cancels_the_handler_within_a_millisecond(hooked: bool) -> None:
    """``ClientWatch`` (what the publisher and inference faces use) sees a client reset and cancels the
    handler (which is waiting for its upstream) within 1 ms, median over 30 connections: through the core's
    ``DISCONNECT_HOOK`` callback (the publisher passes its scope) and through the portable watch task."""
    cancelled_at: dict[int, float] = {}
    started: set[int] = set()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        watch, deadline = start_request(receive, send, has_body=False, scope=scope if hooked else None)
        assert (watch._task is None) == hooked  # the callback replaces the task
        assert (watch.sender is send) == hooked  # and the send wrapper that notes the final body
        started.add(int(scope["path"][1:]))
        port = int(scope["path"][1:])
        try:
            await asyncio.sleep(30)  # the upstream that never answers
        except asyncio.CancelledError:
            cancelled_at[port] = time.monotonic()
            raise
        finally:
            deadline.close()
            watch.stop()

    delays = []
    with serving("native", app) as srv:
        for port in range(30):
            s = connect(srv.port)
            s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % port)
            assert wait_for(lambda p=port: p in started)
            time.sleep(0.01)  # the handler is waiting for its upstream
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t0 = time.monotonic()
            s.close()  # RST
            assert wait_for(lambda p=port: p in cancelled_at, 2.0)
            delays.append(cancelled_at[port] - t0)
    assert statistics.median(delays) < 0.001, sorted(delays)
    assert max(delays) < 0.05


def test_connection_header_and_keep_alive_after_a_body_the_app_did_not_read() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    with serving("native", app) as srv, connect(srv.port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"z" * 100000
                  + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, rest = read_response(s)
        assert head.startswith(b"HTTP/1.1 413") and header(head, b"connection") is None
        head, _, _ = read_response(s, rest)
        assert head.startswith(b"HTTP/1.1 413")


def test_absolute_form_target_gives_the_app_its_path_and_query() -> None:
    """``GET http://host/path HTTP/1.1`` (absolute form): the app gets the path and query of the URL (a URL
    without a query has none: the parser reports it as absent, the scope says ``b""``)."""
    seen: list[tuple[str, bytes, bytes]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["path"], scope["raw_path"], scope["query_string"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serving("native", app) as srv, connect(srv.port) as s:
        s.sendall(b"GET http://a.example/p%20q HTTP/1.1\r\nHost: a.example\r\n\r\n"
                  b"GET http://a.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\n\r\n")
        head, _, rest = read_response(s)
        assert head.startswith(b"HTTP/1.1 204")
        head, _, _ = read_response(s, rest)
        assert head.startswith(b"HTTP/1.1 204")
    assert seen == [("/p q", b"/p%20q", b""), ("/x", b"/x", b"y=1")]
