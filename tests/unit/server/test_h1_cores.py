"""Parity of the two serving cores over real sockets: the native core (``server.h1``) and uvicorn with our
``h1guard`` protocol, each serving the same small ASGI apps. What both must do is tested under both."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from tests.unit.server.h1_harness import CORES, connect, header, read_response, read_until_closed, serving, wait_for


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b"hello " + scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    parts = []
    while True:
        msg = await receive()
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    body = b"".join(parts)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def streamed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(3):
        await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@pytest.mark.parametrize("core", CORES)
def test_keep_alive_pipelining_and_order(core: str) -> None:
    with serving(core, hello) as srv, connect(srv.port) as s:
        s.sendall(b"".join(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in (b"a", b"b", b"c")))
        rest = b""
        bodies = []
        for _ in range(3):
            head, body, rest = read_response(s, rest)
            assert head.startswith(b"HTTP/1.1 200")
            bodies.append(body)
        assert bodies == [b"hello /a", b"hello /b", b"hello /c"]
        s.sendall(b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")  # still open: kept alive
        assert read_response(s, rest)[1] == b"hello /d"


@pytest.mark.parametrize("core", CORES)
def test_idle_keep_alive_connection_closed(core: str) -> None:
    with serving(core, hello, keepalive=1.0) as srv, connect(srv.port) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(s)
        t0 = time.monotonic()
        data, _ = read_until_closed(s)
        assert data == b"" and 0.7 < time.monotonic() - t0 < 3.0


@pytest.mark.parametrize("core", CORES)
def test_request_head_deadline(core: str) -> None:
    with serving(core, hello, header_timeout=0.5) as srv, connect(srv.port) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        for _ in range(3):
            time.sleep(0.2)
            s.sendall(b"s")
        data, _ = read_until_closed(s)
        assert data == b"" and time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("core", CORES)
def test_chunked_framing_without_content_length(core: str) -> None:
    with serving(core, streamed) as srv, connect(srv.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body, _ = read_response(s)
        assert header(head, b"transfer-encoding") == b"chunked"
        assert body == b"part0;part1;part2;"


@pytest.mark.parametrize("core", CORES)
def test_no_server_or_date_header(core: str) -> None:
    with serving(core, hello) as srv, connect(srv.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, _ = read_response(s)
        assert header(head, b"server") is None and header(head, b"date") is None


@pytest.mark.parametrize("core", CORES)
def test_head_request_has_no_body_and_connection_reusable(core: str) -> None:
    with serving(core, hello) as srv, connect(srv.port) as s:
        s.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while buf.count(b"\r\n\r\n") < 2 or not buf.endswith(b"hello /y"):
            buf += s.recv(65536)
        first, _, second = buf.partition(b"\r\n\r\n")
        assert header(first, b"content-length") == b"8"
        assert second.startswith(b"HTTP/1.1 200") and second.endswith(b"\r\n\r\nhello /y")


@pytest.mark.parametrize("core", CORES)
def test_http10_and_connection_close(core: str) -> None:
    with serving(core, hello) as srv:
        with connect(srv.port) as s:
            s.sendall(b"GET /old HTTP/1.0\r\n\r\n")
            data, _ = read_until_closed(s)
            assert data.endswith(b"hello /old")
        with connect(srv.port) as s:
            s.sendall(b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, _ = read_until_closed(s)
            assert header(data.split(b"\r\n\r\n")[0], b"connection") == b"close" and data.endswith(b"hello /c")


@pytest.mark.parametrize("core", CORES)
def test_bytes_after_connection_close_are_ignored(core: str) -> None:
    with serving(core, echo) as srv, connect(srv.port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc"
                  b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
        data, _ = read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"abc") and data.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("core", CORES)
def test_expect_100_continue(core: str) -> None:
    with serving(core, echo) as srv, connect(srv.port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"abcde")
        assert read_response(s)[1] == b"abcde"


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("request_bytes", [
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"BROKEN\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
])
def test_malformed_requests_refused_before_the_app(core: str, request_bytes: bytes) -> None:
    called = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(scope["path"])
        await echo(scope, receive, send)

    with serving(core, app) as srv, connect(srv.port) as s:
        s.sendall(request_bytes)
        data, _ = read_until_closed(s)
        assert data == b"" or data.startswith(b"HTTP/1.1 400")
        assert called == []


@pytest.mark.parametrize("core", CORES)
def test_bad_chunk_size_ends_the_request(core: str) -> None:
    """The head is valid (the app starts), the body's framing is not: no answer but a 400, and the app never
    sees a complete body."""
    with serving(core, echo) as srv, connect(srv.port) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
        data, _ = read_until_closed(s)
        assert data == b"" or data.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("core", CORES)
def test_scope(core: str) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(dict(scope))
        await hello(scope, receive, send)

    with serving(core, app) as srv, connect(srv.port) as s:
        s.sendall(b"GET /a%20b/c?x=1&y=%2F HTTP/1.1\r\nHost: h.test\r\nX-Mixed-Case: V\r\n\r\n")
        read_response(s)
        client = s.getsockname()
    scope = seen[0]
    assert scope["type"] == "http" and scope["asgi"]["version"] == "3.0"
    assert scope["method"] == "GET" and scope["http_version"] == "1.1" and scope["scheme"] == "http"
    assert scope["path"] == "/a b/c" and scope["raw_path"] == b"/a%20b/c" and scope["query_string"] == b"x=1&y=%2F"
    assert scope["client"] == (client[0], client[1]) and scope["server"] == ("127.0.0.1", srv.port)
    assert scope["headers"] == [(b"host", b"h.test"), (b"x-mixed-case", b"V")]


@pytest.mark.parametrize("core", CORES)
def test_500_before_commit(core: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom before the head")

    with serving(core, app) as srv, connect(srv.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data, _ = read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 500")


@pytest.mark.parametrize("core", CORES)
def test_exception_after_head_never_ends_cleanly(core: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("boom after the head")

    with serving(core, app) as srv, connect(srv.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data, _ = read_until_closed(s)
        assert b"partial" in data and not data.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize("core", CORES)
def test_request_body_flow_control_is_bounded(core: str) -> None:
    """An app that does not read its body: the server stops reading, the client's sends stall; when the app
    reads, every byte arrives."""
    release = asyncio.Event()
    got: list[int] = []
    loop_ref: list[asyncio.AbstractEventLoop] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        loop_ref.append(asyncio.get_running_loop())
        await release.wait()
        total = 0
        while True:
            msg = await receive()
            total += len(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        got.append(total)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    size = 64 * 1024 * 1024
    with serving(core, app) as srv, connect(srv.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        s.setblocking(False)
        sent = 0
        chunk = b"x" * 65536
        stalled_at = time.monotonic() + 1.0
        while time.monotonic() < stalled_at:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        assert sent < 16 * 1024 * 1024  # the server stopped reading long before 64 MB
        assert wait_for(lambda: bool(loop_ref))
        loop_ref[0].call_soon_threadsafe(release.set)
        s.setblocking(True)
        while sent < size:
            sent += s.send(chunk[: size - sent])
        assert read_response(s)[1] == b"ok"
    assert got == [size]


@pytest.mark.parametrize("core", CORES)
def test_disconnect_delivered_when_client_leaves(core: str) -> None:
    times: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        msg = await receive()
        assert msg["type"] == "http.request"
        msg = await receive()  # blocks until the client is gone
        times.append(time.monotonic())
        assert msg["type"] == "http.disconnect"

    with serving(core, app) as srv:
        s = connect(srv.port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        t0 = time.monotonic()
        s.close()
        assert wait_for(lambda: bool(times))
        assert times[0] - t0 < 0.5
