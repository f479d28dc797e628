"""``edge.asgi.BODY_WRITE`` on the native core (``Cycle.write_more``): a chunk written in one call exactly as
``send`` frames it, and nothing written (False: the caller uses ``send``) whenever ``send`` would have to act
otherwise: before or while the head is held, for a ``Content-Length`` body, while the client pushes back, after
the end. Over a recording transport (the exact writes) and the server's real protocol object."""

from __future__ import annotations

from typing import Any

from sluicegate.edge.asgi import BODY_WRITE
from tests.unit.server.test_h1_native import _run_one


async def test_body_write_frames_each_chunk_as_send_does() -> None:
    seen: list[bool] = []
    big = b"y" * 20_000

    async def app(scope: Any, receive: Any, send: Any) -> None:
        write = scope[BODY_WRITE]
        seen.append(write(b"early"))  # no head yet
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        seen.append(write(b"held"))  # the head is held for the first body message: it must leave with it
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        seen.append(write(b"two"))
        seen.append(write(big))
        await send({"type": "http.response.body", "body": b"end", "more_body": False})
        seen.append(write(b"late"))  # the response is complete

    t = await _run_one(app)
    assert seen == [False, False, True, True, False]
    assert len(t.writes) == 4
    assert t.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and t.writes[0].endswith(b"\r\n\r\n3\r\none\r\n")
    assert t.writes[1] == b"3\r\ntwo\r\n"
    assert t.writes[2] == b"4e20\r\n" + big + b"\r\n"
    assert t.writes[3] == b"3\r\nend\r\n0\r\n\r\n"


async def test_body_write_declines_content_length_bodies_and_backpressure() -> None:
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        write = scope[BODY_WRITE]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        seen.append(write(b"def"))  # Content-Length framing: send's business (it checks the length)
        await send({"type": "http.response.body", "body": b"def", "more_body": False})

    t = await _run_one(app)
    assert seen == [False] and b"".join(t.writes).endswith(b"\r\n\r\nabcdef")

    async def paused(scope: Any, receive: Any, send: Any) -> None:
        write = scope[BODY_WRITE]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        proto = write.__self__.proto
        proto.pause_writing()  # the transport's buffer is over its high-water mark
        seen.append(write(b"b"))
        proto.resume_writing()
        seen.append(write(b"c"))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    seen.clear()
    t = await _run_one(paused)
    assert seen == [False, True]
    assert t.writes[1:] == [b"1\r\nc\r\n", b"0\r\n\r\n"]
