"""A serving core (native ``server.h1`` or uvicorn with the ``h1guard`` protocol) in a background thread on
its own uvloop loop, serving a test ASGI app on a real socket; blocking socket helpers for the client side."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
import uvloop

from sluicegate.server.h1.protocol import H1Protocol, ServerState
from sluicegate.server.h1guard import guarded_protocol

CORES = ("native", "uvicorn")


class CoreThread:
    def __init__(self, core: str, app: Any, *, header_timeout: float = 5.0, keepalive: float = 5.0,
                 head_limit: int = 65536, ws_protocol: Any = None) -> None:
        self.core = core
        self.app = app
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self.state = ServerState(app, header_timeout=header_timeout, keepalive_timeout=keepalive,
                                 head_limit=head_limit, ws_protocol=ws_protocol)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._header_timeout = header_timeout
        self._keepalive = keepalive

    def _run(self) -> None:
        uvloop.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self._stop = loop.create_future()
        if self.core == "native":
            server = await loop.create_server(lambda: H1Protocol(self.state, loop), sock=self.sock)
            self._started.set()
            await self._stop
            server.close()
            for conn in list(self.state.connections):
                conn.transport.abort()
            return
        config = uvicorn.Config(self.app, loop="none", http=guarded_protocol(self._header_timeout),
                                lifespan="off", access_log=False, server_header=False, date_header=False,
                                timeout_keep_alive=max(1, round(self._keepalive)), log_level="critical",
                                ws=self.state.ws_protocol or "none")
        server = uvicorn.Server(config)
        task = loop.create_task(server.serve(sockets=[self.sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        self._started.set()
        await self._stop
        server.should_exit = True
        server.force_exit = True
        await task

    def start(self) -> CoreThread:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("core did not start")
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)
        self.sock.close()


@contextmanager
def serving(core: str, app: Any, **kw: Any) -> Iterator[CoreThread]:
    srv = CoreThread(core, app, **kw).start()
    try:
        yield srv
    finally:
        srv.stop()


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_closed(s: socket.socket) -> tuple[bytes, bool]:
    """Everything until the server closes; (data, False) when it ended with a reset."""
    out = []
    while True:
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            return b"".join(out), False
        if not data:
            return b"".join(out), True
        out.append(data)


def read_response(s: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """(head, body, rest) of one response with Content-Length or chunked framing (no trailers)."""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a head: {buf!r}")
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    lower = head.lower()
    if b"\r\ncontent-length:" in lower:
        n = int(lower.split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0])
        if lower.startswith(b"head") or b" 304 " in head.split(b"\r\n")[0]:
            n = 0
        while len(buf) < n:
            data = s.recv(65536)
            if not data:
                raise ConnectionError("closed mid-body")
            buf += data
        return head, buf[:n], buf[n:]
    if b"\r\ntransfer-encoding: chunked" in lower:
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += s.recv(65536)
            line, _, buf = buf.partition(b"\r\n")
            size = int(line, 16)
            while len(buf) < size + 2:
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("closed mid-chunk")
                buf += data
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                return head, body, buf
    return head, b"", buf


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def wait_for(pred: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False
