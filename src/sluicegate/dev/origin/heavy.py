"""An origin for the fairness tests (issue 24): big rewritable pages, a gzip bomb generated on the fly,
pre-compressed files served whatever the request's Accept-Encoding says, and a script that never ends.

Runs in its own thread (``ThreadedApp``); what it saw is kept in ``HeavyLog`` for assertions.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from dataclasses import dataclass, field

from aiohttp import web

HEAVY_AUTHORITY = web.AppKey("heavy_authority", str)


@dataclass
class HeavyLog:
    closed_at: dict[str, float] = field(default_factory=dict)  # route -> when the proxy closed on it
    sent_bytes: dict[str, int] = field(default_factory=dict)
    accept_encoding: list[str | None] = field(default_factory=list)


def link_page(origin: str, size: int) -> bytes:
    """A catalogue-like page: a link and an image every ~100 bytes, all pointing at the origin."""
    row = '<li><a href="{o}/item/{i}">item {i}</a> <img src="{o}/i/{i}.png" alt=""></li>\n'
    parts = ["<!doctype html><html><head><title>catalogue</title></head><body><ul>\n"]
    n = 0
    i = 0
    while n < size:
        line = row.format(o=origin, i=i)
        parts.append(line)
        n += len(line)
        i += 1
    parts.append("</ul></body></html>\n")
    return "".join(parts).encode()


def bomb_parts() -> tuple[bytes, bytes]:
    """gzip of ``<a href="`` + ``a`` * n, as (start, repeatable 1 MiB unit): after a full flush a deflate block
    refers to nothing before it, so the same compressed unit can be sent again and again (~1 KiB per MiB)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    start = z.compress(b'<!doctype html><html><body><a href="') + z.flush(zlib.Z_FULL_FLUSH)
    unit = z.compress(b"a" * (1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(b"a" * (1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    assert again == unit
    return start, unit


BOMB_GIB = 10


def build_heavy_origin(log: HeavyLog) -> web.Application:
    app = web.Application()
    r = web.RouteTableDef()
    cache: dict[str, bytes] = {}

    def origin_of(request: web.Request) -> str:
        return f"http://{request.app[HEAVY_AUTHORITY]}"

    @r.get("/big.html")
    async def big(request: web.Request) -> web.Response:
        mib = int(request.query.get("mib", "16"))
        key = f"big{mib}"
        if key not in cache:
            cache[key] = gzip.compress(link_page(origin_of(request), mib << 20), 1)
        return web.Response(
            body=cache[key], headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"}
        )

    @r.get("/small.html")
    async def small(request: web.Request) -> web.Response:
        return web.Response(body=link_page(origin_of(request), 1024), content_type="text/html")

    @r.get("/bomb.html")
    async def bomb(request: web.Request) -> web.StreamResponse:
        """``<a href="`` + 10 GiB of ``a``, gzip, generated as it is sent; never ends before the proxy gives up."""
        tag = request.query.get("tag", "bomb")
        start, unit = bomb_parts()
        resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})
        await resp.prepare(request)
        sent = 0
        try:
            await resp.write(start)
            batch = unit * 64  # 64 MiB decoded per write
            for _ in range((BOMB_GIB << 10) // 64):
                await resp.write(batch)
                sent += len(batch)
                log.sent_bytes[tag] = sent
            await asyncio.sleep(30)  # no trailer: the body never completes
        except (ConnectionResetError, asyncio.CancelledError):
            log.closed_at[tag] = time.monotonic()
            raise
        return resp

    @r.get("/endless-script.html")
    async def endless_script(request: web.Request) -> web.StreamResponse:
        """A ``__NEXT_DATA__`` script that never closes: a unit the rewriter must hold whole (its JSON is
        rewritten as one document), so it emits nothing while it grows. (Plain scripts stream.)"""
        tag = request.query.get("tag", "script")
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        line = b"abcdefghijklmnopqrstuvwxyz0123456789 abcdefghijklmnopqrstuvwxyz012345678\\n" * 1024
        try:
            await resp.write(
                b'<!doctype html><html><body><script id="__NEXT_DATA__" type="application/json">{"props":"'
            )
            for _ in range(400):  # ~30 MiB
                await resp.write(line)
            await resp.write(b'"}</script></body></html>\n')
        except (ConnectionResetError, asyncio.CancelledError):
            log.closed_at[tag] = time.monotonic()
            raise
        return resp

    @r.get("/blob.bin")
    async def blob(request: web.Request) -> web.StreamResponse:
        """Identity octet-stream of ``mib`` MiB (PassThrough: never decoded, no work bound applies)."""
        mib = int(request.query.get("mib", "20"))
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = mib << 20
        await resp.prepare(request)
        block = b"\x00\x01binary" * (1 << 17)
        block = block[: 1 << 20]
        for _ in range(mib):
            await resp.write(block)
        await resp.write_eof()
        return resp

    def precompressed(body: bytes, ctype: str, codings: str) -> web.Response:
        blob = body
        for c in codings.split(","):
            blob = gzip.compress(blob) if c.strip() == "gzip" else blob
        return web.Response(
            body=blob,
            headers={"Content-Type": ctype, "Content-Encoding": codings, "Vary": "Accept-Encoding", "ETag": '"pc1"'},
        )

    @r.get("/static/page.html")
    async def static_page(request: web.Request) -> web.Response:
        """A pre-compressed page: gzip whatever the client asked for (nginx gzip_static always)."""
        log.accept_encoding.append(request.headers.get("Accept-Encoding"))
        return precompressed(link_page(origin_of(request), 4096), "text/html; charset=utf-8", "gzip")

    @r.get("/static/data.bin")
    async def static_bin(request: web.Request) -> web.Response:
        log.accept_encoding.append(request.headers.get("Accept-Encoding"))
        return precompressed(bytes(range(256)) * 64, "application/octet-stream", "gzip")

    @r.get("/static/double.bin")
    async def static_double(request: web.Request) -> web.Response:
        return precompressed(bytes(range(256)) * 64, "application/octet-stream", "gzip, gzip")

    app.add_routes(r)
    return app
