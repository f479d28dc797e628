"""The native core's worker runner (``server.h1.serve``): lifespan answers decide whether it serves; a drain
lets a request finish (exit 0) or cuts it at ``shutdown_timeout`` (exit 3). Real sockets, real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

from sluicegate.server.h1.protocol import ServerState
from sluicegate.server.h1.serve import NativeServer


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def _server(app: Any, timeout: float = 5.0) -> NativeServer:
    state = ServerState(app, header_timeout=5, keepalive_timeout=5, head_limit=65536)
    return NativeServer(state, ready_fd=-1, shutdown_timeout=timeout, ssl_context=None)


async def test_startup_failed_means_no_serving() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    server = _server(app)
    assert await server.serve(_listener()) == 1 and not server.started


def _slow_app(seconds: float, shut: list[str]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    shut.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await asyncio.sleep(seconds)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


async def _drain_with_request(seconds: float, timeout: float) -> tuple[int, bytes, list[str]]:
    shut: list[str] = []
    sock = _listener()
    port = sock.getsockname()[1]
    server = _server(_slow_app(seconds, shut), timeout)
    serving = asyncio.create_task(server.serve(sock))
    while not server.started:
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)  # the loop's handler: drain
    code = await asyncio.wait_for(serving, 10)
    data = await reader.read()
    writer.close()
    return code, data, shut


async def test_drain_lets_the_request_finish() -> None:
    code, data, shut = await _drain_with_request(0.3, 5.0)
    assert code == 0 and data.endswith(b"ok") and b"connection: close" in data.lower() and shut == ["shutdown"]


async def test_drain_cuts_at_shutdown_timeout() -> None:
    code, data, _ = await _drain_with_request(30, 0.3)
    assert code == 3 and data == b""
