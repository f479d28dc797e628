"""The admin listener: ``/metrics``, ``/livez``, ``/readyz``, ``/status`` on ``[admin] listen``, never the public port.

Paths under ``/v1/`` (any method, a bounded JSON body) go to the optional ``api`` handler given by the
supervisor (the key/usage API of ``sluicegate.teams.admin_api``, which does its own token check).

A deliberately small HTTP/1.1 server (GET/HEAD, one request per connection, bounded head and time) run
by the supervisor, so it answers for the whole instance whatever the worker count, and keeps answering
while workers restart or drain. Owns: request parsing and the four routes; what they say comes from the
``AdminState`` the supervisor implements. Must not know about the faces or the config model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger("sluicegate.admin")

MAX_HEAD = 8192
MAX_API_BODY = 64 * 1024
READ_TIMEOUT = 5.0
_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 413: "Content Too Large", 503: "Service Unavailable"}
ApiHandler = Callable[[str, str, dict[str, str], bytes], Awaitable[tuple[int, bytes, str]]]


class AdminState(Protocol):
    def live(self) -> bool: ...
    def readiness(self) -> tuple[bool, dict[str, Any]]: ...
    def status(self) -> dict[str, Any]: ...
    def metrics(self) -> bytes | None: ...


class AdminServer:
    def __init__(self, state: AdminState, sock: socket.socket, api: ApiHandler | None = None) -> None:
        self.state = state
        self.api = api
        self.sock = sock
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self.sock, limit=MAX_HEAD)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                await self._reply(writer, 400, b"bad request\n", "text/plain", head_only=False)
                return
            method, target = parts[0], parts[1]
            path = target.split("?", 1)[0]
            if self.api is not None and path.startswith("/v1/"):
                await self._api(reader, writer, method, target, head)
                return
            if method not in ("GET", "HEAD"):
                await self._reply(writer, 405, b"GET or HEAD\n", "text/plain", head_only=False, allow=True)
                return
            status, body, ctype = await self._route(path)
            await self._reply(writer, status, body, ctype, head_only=method == "HEAD")
        except Exception:
            log.exception("admin request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _api(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, target: str,
                   head: bytes) -> None:
        assert self.api is not None
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_API_BODY:
            await self._reply(writer, 413, b"body too large or bad content-length\n", "text/plain", head_only=False)
            return
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                body = await reader.readexactly(int(length))
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return
        status, out, ctype = await self.api(method, target, headers, body)
        await self._reply(writer, status, out, ctype, head_only=method == "HEAD")

    async def _route(self, path: str) -> tuple[int, bytes, str]:
        state = self.state
        if path == "/metrics":
            body = await asyncio.get_running_loop().run_in_executor(None, state.metrics)
            if body is None:
                return 404, b"metrics are off ([admin] metrics = false)\n", "text/plain"
            return 200, body, "text/plain; version=0.0.4; charset=utf-8"
        if path == "/livez":
            ok = state.live()
            return (200, b"ok\n", "text/plain") if ok else (503, b"no worker is running\n", "text/plain")
        if path == "/readyz":
            ready, detail = state.readiness()
            return 200 if ready else 503, _json(detail), "application/json"
        if path == "/status":
            return 200, _json(state.status()), "application/json"
        return 404, b"unknown admin path (try /metrics, /livez, /readyz, /status)\n", "text/plain"

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str, *, head_only: bool,
                     allow: bool = False) -> None:
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\ncontent-type: {ctype}\r\n"
                f"content-length: {len(body)}\r\ncache-control: no-store\r\nconnection: close\r\n"
                + ("allow: GET, HEAD\r\n" if allow else "") + "\r\n")
        writer.write(head.encode("latin-1") + (b"" if head_only else body))
        with contextlib.suppress(ConnectionError):
            await writer.drain()


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, default=str).encode() + b"\n"
