"""The ASGI lifespan protocol, once: start-up before the first request, shut-down at the end.

Owns the message loop every application object runs when its server speaks lifespan: ``startup`` is
awaited on ``lifespan.startup`` (a failure is reported as ``lifespan.startup.failed`` with its message,
so the server refuses to start instead of serving from a half-built app), ``shutdown`` on
``lifespan.shutdown``. Must not know what is started. Imports the standard library and ``edge.asgi``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sluicegate.edge.asgi import Receive, Send


async def serve_lifespan(
    receive: Receive, send: Send, startup: Callable[[], Awaitable[None]], shutdown: Callable[[], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as exc:  # report, then let the server refuse to start
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
