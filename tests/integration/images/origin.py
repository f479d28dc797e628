"""An image store that fails on demand: real images (made at test time), a bomb, cuts, stalls, lies."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.images import _chunk, photo, png_bomb


@dataclass
class StoreLog:
    requests: list[dict[str, str]] = field(default_factory=list)


def big_png(width: int = 3000, height: int = 3000) -> Iterator[bytes]:
    """A valid 8-bit RGB PNG stored uncompressed (~27 MB), in pieces: made in milliseconds."""
    comp = zlib.compressobj(0)
    row = b"\0" + b"\x80" * (width * 3)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    yield b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    for _ in range(0, height, 100):
        data = b"".join(comp.compress(row) for _ in range(100))
        yield _chunk(b"IDAT", data)
    yield _chunk(b"IDAT", comp.flush()) + _chunk(b"IEND", b"")


def build_store(log: StoreLog) -> web.Application:
    jpeg = photo(2400, 1600)
    alpha = photo(1200, 800, fmt="png", alpha=True)
    as_png = photo(1000, 1000, fmt="png")
    bomb = png_bomb()
    thin = photo(6400, 40, fmt="png")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    app = web.Application()

    def note(request: web.Request) -> None:
        log.requests.append({"path": request.path_qs, **{k.lower(): v for k, v in request.headers.items()}})

    def image(body: bytes, ctype: str, etag: str = "") -> web.StreamResponse:
        headers = {"Cache-Control": "public, max-age=60", "Set-Cookie": "store=1", "Vary": "Origin"}
        if etag:
            headers["ETag"] = etag
        return web.Response(body=body, content_type=ctype, headers=headers)

    async def handler(request: web.Request) -> web.StreamResponse:
        note(request)
        name = request.match_info["name"]
        if name == "photo.jpg":
            if request.headers.get("If-None-Match") == '"p1"':
                return web.Response(status=304, headers={"ETag": '"p1"', "Cache-Control": "public, max-age=60"})
            return image(jpeg, "image/jpeg", '"p1"')
        if name == "alpha.png":
            return image(alpha, "image/png", '"a1"')
        if name == "bomb.png":
            return image(bomb, "image/png")
        if name == "thin.png":
            return image(thin, "image/png")
        if name == "truncated.jpg":  # a truncated file, framed correctly: the bytes end early, not the response
            return image(jpeg[: len(jpeg) // 2], "image/jpeg")
        if name == "soft404.jpg":  # an error page with 200 and the honest type
            return web.Response(body=b"<html><p>no such image</p></html>", content_type="text/html")
        if name == "lying.jpg":  # says JPEG, is HTML
            return web.Response(body=b"<html><p>no such image</p></html>", content_type="image/jpeg")
        if name == "png-named.jpg":  # says JPEG, is a PNG: decided by the bytes
            return image(as_png, "image/jpeg")
        if name == "logo.svg":
            return web.Response(body=svg, content_type="image/svg+xml")
        if name in ("stall.jpg", "cut.jpg"):
            resp = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(len(jpeg))})
            await resp.prepare(request)
            await resp.write(jpeg[:50_000])
            await asyncio.sleep(0.05)  # two socket reads: the count in the answer is every byte received
            await resp.write(jpeg[50_000:100_000])
            if name == "cut.jpg":
                assert request.transport is not None
                request.transport.close()
                return resp
            await asyncio.sleep(30)
            return resp
        if name == "huge-chunked.png":  # no Content-Length: only counting the bytes as they arrive finds it
            resp = web.StreamResponse(headers={"Content-Type": "image/png"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for piece in big_png():
                await resp.write(piece)
            await resp.write_eof()
            return resp
        if name == "huge.jpg":
            return web.Response(body=b"\xff\xd8\xff" + b"\0" * (9 * 1024 * 1024), content_type="image/jpeg")
        raise web.HTTPNotFound(text="no such image")

    app.router.add_get("/store/{name}", handler)
    return app
