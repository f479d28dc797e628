"""A hostile-on-demand test origin: normal pages plus every failure a proxy must survive."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time
import zlib
from dataclasses import dataclass, field

import brotli
import zstandard
from aiohttp import web

ORIGIN_AUTHORITY = web.AppKey("origin_authority", str)
ORIGIN_HOST = web.AppKey("origin_host", str)


@dataclass
class OriginLog:
    """What the origin observed, for assertions from the test thread."""

    requests: list[dict[str, object]] = field(default_factory=list)
    closed_at: dict[str, float] = field(default_factory=dict)
    first_body_byte_at: dict[str, float] = field(default_factory=dict)
    sent_at: dict[str, list[float]] = field(default_factory=dict)


def page(origin: str, n: int = 50) -> bytes:
    items = "".join(
        f'<li><a href="{origin}/item/{i}">item {i}</a> <img src="{origin}/i/{i}.png"></li>\n' for i in range(n)
    )
    return (
        f'<!doctype html><html><head><title>t</title><link href="{origin}/s.css" rel="stylesheet"></head>'
        f'<body><ul>\n{items}</ul><script>var u = "{origin}/api";</script></body></html>\n'
    ).encode()


def build_origin(log: OriginLog) -> web.Application:
    app = web.Application()
    r = web.RouteTableDef()

    def origin_of(request: web.Request) -> str:
        return f"http://{request.app[ORIGIN_AUTHORITY]}"

    @r.get("/page")
    async def html(request: web.Request) -> web.Response:
        return web.Response(
            body=page(origin_of(request)),
            content_type="text/html",
            headers={"ETag": '"v1"', "Connection": "X-Hop", "X-Hop": "secret"},
        )

    @r.get("/enc/{coding}")
    async def encoded(request: web.Request) -> web.Response:
        body = page(origin_of(request), 400)
        coding = request.match_info["coding"]
        blob = {
            "gzip": gzip.compress,
            "deflate": zlib.compress,
            "br": brotli.compress,
            "zstd": zstandard.ZstdCompressor().compress,
        }[coding](body)
        return web.Response(
            body=blob, headers={"Content-Type": "text/html; charset=utf-8", "Content-Encoding": coding, "ETag": '"e1"'}
        )

    @r.get("/css")
    async def css(request: web.Request) -> web.Response:
        body = f"a {{ background: url({origin_of(request)}/x.png) }} /* caf\xe9 */".encode("latin-1")
        return web.Response(body=body, headers={"Content-Type": "text/css; charset=iso-8859-1"})

    @r.get("/binary")
    async def binary(request: web.Request) -> web.Response:
        body = hashlib.sha256(b"x").digest() * 40000 + origin_of(request).encode()
        return web.Response(body=body, headers={"Content-Type": "image/png"})

    @r.get("/gz-binary")
    async def gz_binary(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b"\x89PNG" * 1000), headers={"Content-Type": "image/png", "Content-Encoding": "gzip"}
        )

    @r.route("*", "/status/{code}")
    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        resp = web.Response(status=code, headers={"ETag": '"s"', "Content-Type": "text/html"})
        if code in (204, 304):
            return resp
        resp.body = b"x" * 10
        return resp

    @r.route("HEAD", "/head")
    async def head(request: web.Request) -> web.Response:
        return web.Response(headers={"Content-Type": "text/html", "Content-Length": "1234"})

    @r.get("/redirect")
    async def redirect(request: web.Request) -> web.Response:
        o = origin_of(request)
        return web.Response(
            status=302,
            headers={
                "Location": f"{o}/next",
                "Link": f"<{o}/a.css>; rel=preload",
                "Set-Cookie": f"sid=1; Domain={request.app[ORIGIN_HOST]}; Path=/",
            },
        )

    @r.route("*", "/echo")
    async def echo(request: web.Request) -> web.Response:
        first = None
        h = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            if first is None:
                first = time.monotonic()
                log.first_body_byte_at[request.path] = first
            h.update(chunk)
            size += len(chunk)
        info = {
            "method": request.method,
            "path_qs": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_sha256": h.hexdigest(),
            "body_size": size,
        }
        log.requests.append(info)
        # octet-stream: the proxy must relay this report untouched (JSON would be host-rewritten)
        return web.Response(body=json.dumps(info).encode(), content_type="application/octet-stream")

    @r.get("/trickle")
    async def trickle(request: web.Request) -> web.StreamResponse:
        """Head + 1 KB at once, then 20 x 1 KB every 50 ms."""
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        stamps = log.sent_at.setdefault("trickle", [])
        stamps.clear()
        await resp.write(b"<p>" + b"a" * 1020 + b"</p>")
        stamps.append(time.monotonic())
        for _ in range(20):
            await asyncio.sleep(0.05)
            await resp.write(b"<b>" + b"b" * 1017 + b"</b>\n")
            stamps.append(time.monotonic())
        await resp.write_eof()
        return resp

    @r.get("/sse")
    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        stamps = log.sent_at.setdefault("sse", [])
        stamps.clear()
        for i in range(5):
            await resp.write(f"data: {i}\n\n".encode())
            stamps.append(time.monotonic())
            await asyncio.sleep(0.2)
        await resp.write_eof()
        return resp

    @r.get("/forever")
    async def forever(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        tag = request.query.get("tag", "forever")
        try:
            while True:
                await resp.write(b"z" * 1024)
                await asyncio.sleep(0.02)
        except (ConnectionResetError, asyncio.CancelledError):
            log.closed_at[tag] = time.monotonic()
            raise

    @r.get("/slow-head")
    async def slow_head(request: web.Request) -> web.Response:
        tag = request.query.get("tag", "slow-head")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            log.closed_at[tag] = time.monotonic()
            raise
        return web.Response(text="late")

    async def start_then(request: web.Request, ctype: str, coding: str | None, first: bytes) -> web.StreamResponse:
        headers = {"Content-Type": ctype}
        if coding:
            headers["Content-Encoding"] = coding
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        await resp.write(first)
        return resp

    @r.get("/reset")
    async def reset(request: web.Request) -> web.StreamResponse:
        resp = await start_then(request, "text/html", None, b"<html><body>" + b"x" * 5000)
        await asyncio.sleep(0.1)
        assert request.transport is not None
        request.transport.abort()
        return resp

    @r.get("/reset-binary")
    async def reset_binary(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = 100_000
        await resp.prepare(request)
        await resp.write(b"y" * 5000)
        await asyncio.sleep(0.1)
        assert request.transport is not None
        request.transport.abort()
        return resp

    @r.get("/stall")
    async def stall(request: web.Request) -> web.StreamResponse:
        resp = await start_then(request, "text/html", None, b"<html><body>" + b"x" * 100)
        await asyncio.sleep(30)
        return resp

    @r.get("/corrupt-gzip")
    async def corrupt(request: web.Request) -> web.Response:
        good = gzip.compress(page(origin_of(request), 400))
        bad = good[:200] + bytes(b ^ 0x5A for b in good[200:400]) + good[400:]
        return web.Response(body=bad, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})

    @r.get("/truncated-gzip")
    async def truncated(request: web.Request) -> web.Response:
        good = gzip.compress(page(origin_of(request), 400))
        return web.Response(
            body=good[: len(good) // 2], headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}
        )

    bomb = gzip.compress(b"<p>" + b"\0" * (200 * 1024 * 1024))

    @r.get("/bomb")
    async def gzip_bomb(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})

    @r.get("/big")
    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("mb", "64")) * 1024 * 1024
        resp = web.StreamResponse(headers={"Content-Type": request.query.get("type", "application/octet-stream")})
        resp.content_length = size
        await resp.prepare(request)
        block = b"<p>" + b"q" * (64 * 1024 - 7) + b"</p>"
        for _ in range(size // len(block)):
            await resp.write(block)
        await resp.write(b"q" * (size % len(block)))
        await resp.write_eof()
        return resp

    @r.get("/late-body")
    async def late_body(request: web.Request) -> web.StreamResponse:
        """Head at once, body 0.5 s later: the client must get the head at once."""
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        log.sent_at["late-body-head"] = [time.monotonic()]
        await asyncio.sleep(0.5)
        await resp.write(b"<p>late</p>")
        await resp.write_eof()
        return resp

    @r.get("/trickle-gzip")
    async def trickle_gzip(request: web.Request) -> web.StreamResponse:
        """gzip HTML in two sync-flushed parts 0.5 s apart."""
        o = origin_of(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})
        await resp.prepare(request)
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        await resp.write(z.compress(f'<html><body><a href="{o}/first">first</a>'.encode()) + z.flush(zlib.Z_SYNC_FLUSH))
        log.sent_at["trickle-gzip"] = [time.monotonic()]
        await asyncio.sleep(0.5)
        await resp.write(z.compress(f'<a href="{o}/second">second</a></body></html>'.encode()) + z.flush())
        await resp.write_eof()
        return resp

    @r.get("/json")
    async def js(request: web.Request) -> web.Response:
        o = origin_of(request)
        return web.Response(
            text=json.dumps({"u": f"{o}/x", "e": o.replace("/", "\\/")}), content_type="application/json"
        )

    app.add_routes(r)
    return app
