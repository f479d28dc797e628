"""Real-socket harness: a mock provider and the gateway, each in a background thread. The gateway runs on the
product's serving core (``[server] http_core``, default native; ``SLUICEGATE__SERVER__HTTP_CORE=uvicorn`` for the
other)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

import uvicorn
import uvloop

from sluicegate.config.model import Settings
from sluicegate.inference.app import InferenceApp
from sluicegate.server.h1.protocol import ServerState
from sluicegate.server.h1.serve import NativeServer


class GatewayServer:
    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.gateway = InferenceApp(settings, environ or {})
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.core = os.environ.get("SLUICEGATE__SERVER__HTTP_CORE", settings.server.http_core)
        self.native: NativeServer | None = None
        if self.core == "native":
            state = ServerState(self.gateway, header_timeout=settings.timeouts.client_header,
                                keepalive_timeout=settings.timeouts.client_keepalive, head_limit=128 * 1024)
            self.native = NativeServer(state, ready_fd=-1, shutdown_timeout=1.0, ssl_context=None)
        else:
            config = uvicorn.Config(app=self.gateway, loop="uvloop", http="httptools", lifespan="on",
                                    log_level="critical", access_log=False)
            self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        if self.native is not None:
            self.sock.listen(1024)
            uvloop.run(self.native.serve(self.sock))
        else:
            self.server.run(sockets=[self.sock])

    def _started(self) -> bool:
        return self.native.started if self.native is not None else bool(self.server.started)

    def start(self) -> GatewayServer:
        self.thread.start()
        for _ in range(500):
            if self._started():
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("gateway did not start")

    def stop(self) -> None:
        if self.native is not None:
            self.native.stop()
        else:
            self.server.should_exit = True
        self.thread.join(10)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def settings_for(inference: dict[str, Any]) -> Settings:
    return Settings.model_validate({"inference": inference})


class RawResponse:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.header_list: list[tuple[str, str]] = []
        self.body = b""
        self.complete = False  # framing ended cleanly (Content-Length reached / terminating chunk seen)
        self.closed = False  # server closed the connection


def read_response(sock: socket.socket, timeout: float = 10.0) -> RawResponse:
    """Read one HTTP/1.1 response off a socket, de-chunking; stops at its end or at connection close."""
    sock.settimeout(timeout)
    buf = b""
    res = RawResponse()

    def more() -> bool:
        nonlocal buf
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            data = b""
        if not data:
            res.closed = True
            return False
        buf += data
        return True

    while b"\r\n\r\n" not in buf:
        if not more():
            return res
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    res.status = int(lines[0].split()[1])
    for line in lines[1:]:
        k, _, v = line.partition(":")
        res.header_list.append((k.strip().lower(), v.strip()))
        res.headers[k.strip().lower()] = v.strip()
    if "content-length" in res.headers:
        n = int(res.headers["content-length"])
        while len(buf) < n:
            if not more():
                res.body = buf
                return res
        res.body, res.complete = buf[:n], True
        return res
    if res.headers.get("transfer-encoding", "").lower() != "chunked":
        while more():
            pass
        res.body = buf
        return res
    body = bytearray()
    while True:
        while b"\r\n" not in buf:
            if not more():
                res.body = bytes(body)
                return res
        size_line, rest = buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        while len(rest) < size + 2:
            buf = size_line + b"\r\n" + rest
            if not more():
                res.body = bytes(body) + rest[:size]
                return res
            size_line, rest = buf.split(b"\r\n", 1)
        body += rest[:size]
        buf = rest[size + 2 :]
        if size == 0:
            res.complete = True
            res.body = bytes(body)
            return res


def raw_request(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                timeout: float = 10.0, sock: socket.socket | None = None) -> RawResponse:
    own = sock is None
    s = sock or socket.create_connection(("127.0.0.1", port))
    try:
        send_request(s, method, path, body, headers)
        return read_response(s, timeout)
    finally:
        if own:
            s.close()


def send_request(s: socket.socket, method: str, path: str, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> None:
    hdrs = {"host": "127.0.0.1", "content-type": "application/json", **(headers or {})}
    if method != "GET" or body:
        hdrs.setdefault("content-length", str(len(body)))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    s.sendall(head.encode("latin-1") + body)
