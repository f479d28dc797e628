"""A local test origin for the bench tests: aiohttp.web on a free port, run in a background thread."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

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


@dataclass
class Origin:
    url: str
    port: int


class OriginThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        app = web.Application()
        app.router.add_get("/", page)
        app.router.add_get("/page", page)
        app.router.add_get("/trickle", trickle)
        app.router.add_get("/chunked", chunked)
        app.router.add_get("/status/{code}", status)
        app.router.add_route("*", "/echo", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self._stop = asyncio.Event()
        self.ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> Origin:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("test origin did not start")
        return Origin(url=f"http://127.0.0.1:{self.port}", port=self.port)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=5)
