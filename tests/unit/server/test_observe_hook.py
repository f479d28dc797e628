"""The native core's ``OBSERVE_HOOK`` (pt4, issue 19) against the portable ``receive``/``send`` wrapper.

The whole app (``server.app.SluicegateApp``: observer, publisher face, origin pool) is served on a real socket by
each core in turn -- the native ``server.h1`` (which keeps the request's counts itself: no wrapper) and uvicorn
(the observer wraps ``receive``/``send``) -- in front of a real origin. The same requests must give the same
response bytes and the same access-log fields under both, including a request body, the answer of no face, a
first-byte timeout (504 before the commit), an origin that dies mid-body (abort after the commit) and a client
that leaves while the origin is silent (the origin request is cancelled).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from sluicegate.config import load_settings
from sluicegate.observability import access
from sluicegate.server.app import SluicegateApp
from tests.support.servers import RawOrigin, RawRequest
from tests.unit.server.h1_harness import CORES, connect, read_response, read_until_closed, serving, wait_for

_VARYING = ("ts", "ttfb_ms", "duration_ms", "upstream_ms", "host", "client_ip")  # times; the port the core got
PAGE = b"<p>" + b"x" * 2045 + b"\n"


class Origin(RawOrigin):
    """A threaded origin on loopback: /page (2 KB, keep-alive), /echo (the request body back), /slow (no head for
    2 s), /cut (a head promising 4096 bytes, 100 sent, then closed). Records when a /slow connection is closed."""

    def __init__(self) -> None:
        super().__init__(self._answer)
        self.slow_closed: list[float] = []

    def _answer(self, conn: socket.socket, request: RawRequest) -> bool:
        if request.path == b"/slow":
            conn.settimeout(5)
            try:
                conn.recv(1)  # the proxy closes the connection when it gives up
            except OSError:
                pass
            self.slow_closed.append(time.monotonic())
            return False
        if request.path == b"/cut":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: 4096\r\n\r\n" + b"y" * 100)
            time.sleep(0.05)
            return False
        out = request.body if request.path == b"/echo" else PAGE
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nETag: \"e1\"\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(out), out))
        return True


def _app(origin: Origin, log_fd: int, public_port: int) -> SluicegateApp:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(f"""
[server]
access_log = "json"
[publisher]
origin_url = "http://127.0.0.1:{origin.port}"
public_hosts = ["127.0.0.1:{public_port}"]
[timeouts]
first_byte = 0.4
""")
    try:
        app = SluicegateApp(load_settings(f.name))
    finally:
        os.unlink(f.name)
    app._started = True  # the pool starts with the first request; the worker's process-wide set-up is not wanted
    app.observer.writer = access.AccessWriter(log_fd)
    return app


def _exchange(core: str, origin: Origin, tmp: Path) -> tuple[list[bytes], list[dict[str, Any]], float]:
    log_path = tmp / f"access-{core}.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    answers: list[bytes] = []
    gone_at = 0.0
    try:
        # the app needs its public host, known once the core listens: the core serves a forwarder
        app_holder: dict[str, Any] = {}

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await app_holder["app"](scope, receive, send)

        with serving(core, app) as srv:
            sg = app_holder["app"] = _app(origin, fd, srv.port)
            host = b"Host: 127.0.0.1:%d\r\n" % srv.port
            with connect(srv.port) as s:
                for req in (
                    b"GET /page HTTP/1.1\r\n" + host + b"X-Request-Id: r-page\r\n\r\n",
                    b"HEAD /page HTTP/1.1\r\n" + host + b"X-Request-Id: r-head\r\n\r\n",
                    b"POST /echo HTTP/1.1\r\n" + host + b"X-Request-Id: r-echo\r\nContent-Length: 7\r\n\r\nabcdefg",
                    b"GET /page HTTP/1.1\r\n" + host + b"X-Request-Id: r-inm\r\nIf-None-Match: \"e1\"\r\n\r\n",
                    b"GET /slow HTTP/1.1\r\n" + host + b"X-Request-Id: r-slow\r\n\r\n",
                ):
                    s.sendall(req)
                    if req.startswith(b"HEAD "):  # a head with Content-Length and no body
                        data = b""
                        while not data.endswith(b"\r\n\r\n"):
                            data += s.recv(1)
                        answers.append(data)
                        continue
                    head, body, rest = read_response(s)
                    assert rest == b""
                    answers.append(head + b"\r\n\r\n" + body)
            with connect(srv.port) as s:  # a Host the publisher does not serve: its own 421
                s.sendall(b"GET /x HTTP/1.1\r\nHost: elsewhere.test\r\nX-Request-Id: r-421\r\n\r\n")
                head, body, _ = read_response(s)
                answers.append(head + b"\r\n\r\n" + body)
            with connect(srv.port) as s:  # the origin dies mid-body: the client sees a reset or an early close
                s.sendall(b"GET /cut HTTP/1.1\r\n" + host + b"X-Request-Id: r-cut\r\n\r\n")
                data, _ = read_until_closed(s)
                assert data.startswith(b"HTTP/1.1 200 ")
                assert len(data.partition(b"\r\n\r\n")[2]) < 4096
                answers.append(data.partition(b"\r\n\r\n")[0])
            n_closed = len(origin.slow_closed)
            s = connect(srv.port)  # the client leaves while the origin is silent: the origin request is cancelled
            s.sendall(b"GET /slow HTTP/1.1\r\n" + host + b"X-Request-Id: r-gone\r\n\r\n")
            time.sleep(0.1)
            s.close()
            gone_at = time.monotonic()
            assert wait_for(lambda: len(origin.slow_closed) > n_closed, 2.0)
            gone_at = origin.slow_closed[-1] - gone_at
            assert wait_for(lambda: b"r-gone" in _flushed(sg, log_path), 3.0)
    finally:
        os.close(fd)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    return answers, lines, gone_at


def _flushed(app: SluicegateApp, path: Path) -> bytes:
    loop = h1_loop[0]
    if loop is not None:
        loop.call_soon_threadsafe(app.observer.flush)
        time.sleep(0.05)
    return path.read_bytes()


h1_loop: list[Any] = [None]


@pytest.fixture
def origin() -> Any:
    o = Origin()
    yield o
    o.close()


def test_native_observe_hook_matches_the_wrapped_path(origin: Origin, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.server import h1_harness

    real_main = h1_harness.CoreThread._main

    async def main(self: Any) -> None:  # note the core's loop: the access log is flushed on it
        import asyncio

        h1_loop[0] = asyncio.get_running_loop()
        await real_main(self)

    monkeypatch.setattr(h1_harness.CoreThread, "_main", main)
    results = {core: _exchange(core, origin, tmp_path) for core in CORES}
    native, wrapped = results["native"], results["uvicorn"]
    assert native[0] == wrapped[0]  # the same bytes on the wire, request ids given by the client
    statuses = [a.split(b" ", 2)[1] for a in native[0]]
    assert statuses == [b"200", b"200", b"200", b"200", b"504", b"421", b"200"]
    assert native[2] < 0.5 and wrapped[2] < 0.5  # the upstream was dropped at once when the client left

    def fields(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for line in lines:
            assert (line["ttfb_ms"] is None) == (line["status"] == 0), line
            assert line["duration_ms"] >= (line["ttfb_ms"] or 0)
            out[line["request_id"]] = {k: v for k, v in line.items() if k not in _VARYING}
        return out

    got, want = fields(native[1]), fields(wrapped[1])
    assert got == want
    assert got["r-page"]["bytes_out"] == len(PAGE) and got["r-page"]["route"] is not None
    assert got["r-echo"]["bytes_in"] == 7 and got["r-echo"]["bytes_out"] == 7
    assert got["r-head"]["bytes_out"] == 0
    assert got["r-slow"]["status"] == 504 and got["r-slow"]["error"] == "first_byte_timeout"
    assert got["r-421"]["status"] == 421
    assert got["r-cut"]["status"] == 200 and got["r-cut"]["error"] is not None
    assert got["r-gone"]["status"] == 0 and got["r-gone"]["error"] == "client_gone"


def test_the_answer_of_no_face_carries_the_request_id(tmp_path: Path) -> None:
    """No face serves the request (publisher off): 404 with the request id header, under both cores alike."""
    cfg = tmp_path / "none.toml"
    cfg.write_text('[server]\naccess_log = "off"\n[publisher]\nenabled = false\n')
    answers = []
    for core in CORES:
        app = SluicegateApp(load_settings(str(cfg)))
        app._started = True
        with serving(core, app) as srv, connect(srv.port) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: r-none\r\n\r\n")
            head, body, _ = read_response(s)
            answers.append(head + b"\r\n\r\n" + body)
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 404 ") and b"\r\nx-request-id: r-none" in answers[0]
