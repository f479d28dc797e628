"""Backends for the route-table tests: a page site that links to itself, and an asset store.

The asset store behaves like a real one where it matters: byte ranges and conditional requests (aiohttp's
``FileResponse``), cookies / HSTS / Clear-Site-Data it should never get to set on the public site, redirects,
204, a body that ends early, one that stalls, and an echo of what it was sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from aiohttp import web

SELF = web.AppKey("self_authority", str)
# /drip sends its first piece, then waits for the test to set this (proof the first piece got through alone)
DRIP_RELEASE = threading.Event()
FILES = web.AppKey("files", Path)


def build_site(label: str) -> web.Application:
    """A page backend: HTML naming its own authority, and an echo of the request."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        if "echo" in request.path:
            return await echo(request)
        if "slow" in request.path:
            await asyncio.sleep(0.6)
        me = f"http://{request.app[SELF]}"
        body = f'<!doctype html><html><body><a href="{me}/item">{label}</a> {request.path_qs}</body></html>'
        return web.Response(text=body, content_type="text/html", headers={"X-Backend": label})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"backend": label, "method": request.method, "target": request.raw_path,
                                  "headers": [[k, v] for k, v in request.headers.items()]})

    app.router.add_get("/{tail:.*}", page)
    return app


def build_assets(files: Path) -> web.Application:
    app = web.Application()
    app[FILES] = files

    async def file(request: web.Request) -> web.StreamResponse:
        path = (request.app[FILES] / request.match_info["name"]).resolve()
        if not path.is_relative_to(request.app[FILES].resolve()) or not path.is_file():
            return web.Response(status=404, text="no such file")
        return web.FileResponse(path, headers={"Cache-Control": "private, max-age=60"})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"method": request.method, "target": request.raw_path,
                                  "headers": [[k, v] for k, v in request.headers.items()]})

    async def leaky(request: web.Request) -> web.Response:
        return web.Response(
            body=b"x" * 100,
            content_type="text/css",
            headers={
                "Set-Cookie": "session=backend-secret; Path=/",
                "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
                "Clear-Site-Data": '"cookies"',
                "Alt-Svc": 'h3=":443"',
                "Cache-Control": "private, no-cache",
                "Connection": "X-Private",
                "X-Private": "hop",
                "ETag": '"leaky-1"',
            },
        )

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/files/small.bin"})

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="missing", headers={"Cache-Control": "no-store"})

    async def nocontent(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def truncated(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100000", "Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        await resp.write(b"t" * 1000)
        assert request.transport is not None
        request.transport.close()
        return resp

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100000", "Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        await resp.write(b"s" * 1000)
        await asyncio.sleep(30)
        return resp

    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})  # chunked
        await resp.prepare(request)
        await resp.write(b"first;")
        released = await asyncio.to_thread(DRIP_RELEASE.wait, 5.0)
        await resp.write(b"released;" if released else b"timed-out;")
        await resp.write_eof()
        return resp

    async def slow_head(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    app.router.add_get("/files/{name}", file)
    app.router.add_get("/static/missing", not_found)
    app.router.add_get("/static/{name}", file)
    app.router.add_route("*", "/echo{tail:.*}", echo)
    app.router.add_get("/leaky", leaky)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/missing", not_found)
    app.router.add_get("/nocontent", nocontent)
    app.router.add_get("/truncated", truncated)
    app.router.add_get("/stall", stall)
    app.router.add_get("/slow", slow_head)
    app.router.add_get("/drip", drip)
    return app


def describe(data: bytes) -> dict[str, object]:
    out: dict[str, object] = json.loads(data)
    return out
