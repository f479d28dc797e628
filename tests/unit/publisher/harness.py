"""Real sockets for the publisher face's unit tests, all in the test's own event loop.

``ScriptedOrigin``: a TCP server whose every connection runs the test's ``handler(reader, writer)``: the
test decides each byte the origin sends and when (a stall, a short body, garbage). ``PublisherServer``:
``PublisherApp`` under uvicorn (httptools, as served) on a free port. ``request``: a raw HTTP/1.1
client that reports whether the response's framing ended cleanly (``complete``) or the connection was
cut (an abort), and can hand each body chunk to the test as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
import uvicorn

from sluicegate.config.model import Settings
from sluicegate.observability.metrics import REGISTRY
from sluicegate.publisher.app import PublisherApp

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
PUBLIC = "pub.test"


class ScriptedOrigin:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.accepted = 0
        self.closed = asyncio.Event()  # a connection's handler ended (peer EOF, reset or done)
        self.requests: list[bytes] = []  # each request head as received
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def head(self, reader: asyncio.StreamReader) -> bytes:
        """Read one request head (the tests' handlers call this first)."""
        data = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(data)
        return data

    async def __aenter__(self) -> ScriptedOrigin:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)


def settings(origin_port: int, **sections: dict[str, Any]) -> Settings:
    doc: dict[str, Any] = {
        "publisher": {"origin_url": f"http://127.0.0.1:{origin_port}", "public_hosts": [PUBLIC]},
        "timeouts": {"connect": 2.0, "first_byte": 1.0, "idle": 1.0},
    }
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    return Settings.model_validate(doc)


@contextlib.asynccontextmanager
async def publisher(config: Settings, wrap: Callable[[Any], Any] | None = None) -> AsyncIterator[PublisherServer]:
    """``PublisherApp`` under uvicorn; ``wrap`` (an ASGI middleware factory) goes around it when given."""
    server = PublisherServer(PublisherApp(config), wrap)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class PublisherServer:
    def __init__(self, app: PublisherApp, wrap: Callable[[Any], Any] | None = None) -> None:
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app=wrap(app) if wrap is not None else app, http="httptools", lifespan="off",
                                log_level="critical", access_log=False)
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.app.startup()
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        for _ in range(500):
            if self.server.started:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
        await self.app.shutdown()
        self.sock.close()


@dataclass
class Reply:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False  # the framing ended cleanly; False: the connection was cut mid-response


class _Collect:
    def __init__(self, head_only: bool) -> None:
        self.reply = Reply()
        self.parts: list[bytes] = []
        self.chunks: list[bytes] = []
        self.head_only = head_only

    def on_header(self, name: bytes, value: bytes) -> None:
        self.reply.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.head_only:  # a response to HEAD ends with its head, whatever Content-Length says
            self.reply.complete = True

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.reply.complete = True


async def request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    raw: bytes | None = None,
    on_chunk: Callable[[bytes], Awaitable[None]] | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request on a fresh connection (``Connection: close``); ``on_chunk`` sees body bytes as they arrive."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if raw is None:
        hdrs = {"host": PUBLIC, "connection": "close", **(headers or {})}
        if body is not None:
            hdrs["content-length"] = str(len(body))
        raw = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(
            f"{k}: {v}\r\n".encode("latin-1") for k, v in hdrs.items()
        ) + b"\r\n" + (body or b"")
    writer.write(raw)
    collect = _Collect(head_only=method == "HEAD")
    parser = httptools.HttpResponseParser(collect)
    try:
        async with asyncio.timeout(timeout):
            while not collect.reply.complete:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError:
                    break
                if on_chunk is not None:
                    while collect.chunks:
                        await on_chunk(collect.chunks.pop(0))
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    collect.reply.status = parser.get_status_code() if collect.reply.headers else 0
    collect.reply.body = b"".join(collect.parts)
    return collect.reply


def counter(name: str, **labels: str) -> float:
    """A metric's current value in this process (0 when never incremented)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
