"""A small, well-behaved origin for the measuring commands (``sluicegate bench ttfb|load|browser|...``):
a 2 KB page, a page whose second half comes ``TRICKLE_DELAY`` s after the first, a chunked body, any status
code, and an echo of method/body/header. Build it with :func:`build_measure_origin`, run it with
``serve.ThreadedApp`` (plain or TLS).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

PAGE = (
    b"<!doctype html><html><head><title>bench test</title></head><body><h1>Hello</h1>"
    + b"<p>" + b"lorem ipsum " * 150 + b"</p></body></html>\n"
)
TRICKLE_DELAY = 0.25  # seconds between the first and the second body part of /trickle


async def page(_request: web.Request) -> web.Response:
    return web.Response(body=PAGE, content_type="text/html")


async def trickle(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/html"})
    await resp.prepare(request)
    await resp.write(b"<!doctype html><html><head><title>trickle</title></head><body><h1>first</h1>")
    await asyncio.sleep(TRICKLE_DELAY)
    await resp.write(b"<p>" + b"late " * 200 + b"</p></body></html>\n")
    await resp.write_eof()
    return resp


async def chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(5):
        await resp.write(b"part %d\n" % i)
    await resp.write_eof()
    return resp


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status\n")


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=body, headers={"X-Method": request.method,
                                            "X-Seen": request.headers.get("X-Test", "")})


def build_measure_origin() -> web.Application:
    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/page", page)
    app.router.add_get("/trickle", trickle)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/status/{code}", status)
    app.router.add_route("*", "/echo", echo)
    return app
