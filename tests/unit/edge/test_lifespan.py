"""``serve_lifespan``: start-up before the first request, its failure reported, shut-down at the end."""

from __future__ import annotations

import asyncio

from sluicegate.edge.asgi import Message
from sluicegate.edge.lifespan import serve_lifespan


async def _run(startup_fails: bool) -> tuple[list[str], list[Message]]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": kind})
    sent: list[Message] = []
    calls: list[str] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def startup() -> None:
        calls.append("startup")
        if startup_fails:
            raise RuntimeError("origin_url unreachable")

    async def shutdown() -> None:
        calls.append("shutdown")

    await asyncio.wait_for(serve_lifespan(inbox.get, send, startup, shutdown), 2.0)
    return calls, sent


async def test_startup_then_shutdown_each_acknowledged() -> None:
    calls, sent = await _run(startup_fails=False)
    assert calls == ["startup", "shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_a_failed_startup_is_reported_and_ends_the_protocol() -> None:
    calls, sent = await _run(startup_fails=True)
    assert calls == ["startup"]  # no shutdown of what never started
    assert sent == [{"type": "lifespan.startup.failed", "message": "origin_url unreachable"}]
