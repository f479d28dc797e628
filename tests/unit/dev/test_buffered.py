"""``sluicegate.dev.buffered``: the buffered side of ``bench stream-ab``, outside the product path.

The publisher under uvicorn with the middleware around it, a scripted origin that trickles: the client
gets nothing until the origin is done, then the whole body with its exact length."""

from __future__ import annotations

import asyncio
import functools

from sluicegate.dev.buffered import BufferedResponses
from tests.unit.publisher.harness import ScriptedOrigin, publisher, request, settings


def trickle(parts: list[bytes], delay: float) -> ScriptedOrigin:
    """An origin that sends ``parts`` as chunks, ``delay`` seconds apart."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/css\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in parts:
            writer.write(b"%x\r\n%b\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(delay)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    origin = ScriptedOrigin(script)
    return origin


async def test_the_whole_body_arrives_at_once_with_its_length() -> None:
    origin = trickle([b"a{}", b"b{}", b"c{}"], 0.2)
    async with origin, publisher(settings(origin.port), BufferedResponses) as proxy:
        arrivals: list[float] = []
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def on_chunk(data: bytes) -> None:
            arrivals.append(loop.time() - t0)

        r = await request(proxy.port, on_chunk=on_chunk, headers={"accept-encoding": "identity"})
    assert r.complete and r.body == b"a{}b{}c{}"
    assert r.headers["content-length"] == "9" and "transfer-encoding" not in r.headers
    assert min(arrivals) >= 0.5  # nothing before the origin was done (3 parts, 0.2 s apart)


async def test_over_the_cap_is_a_502_before_anything_was_sent() -> None:
    origin = trickle([b"x" * 4000, b"y" * 4000], 0.01)
    async with origin, publisher(settings(origin.port), functools.partial(BufferedResponses, cap=5000)) as proxy:
        r = await request(proxy.port, headers={"accept-encoding": "identity"})
    assert r.status == 502 and r.complete and b"5000" in r.body


async def test_a_failure_after_the_inner_commit_becomes_a_502() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/css\r\nContent-Length: 50\r\n\r\nonly this")
        await writer.drain()

    origin = ScriptedOrigin(short)
    async with origin, publisher(settings(origin.port), BufferedResponses) as proxy:
        r = await request(proxy.port)
    assert r.status == 502 and r.complete and b"ResponseAborted" in r.body
