"""Fixtures of the bench integration tests: a local origin (aiohttp.web on a free port, in a thread, with a
trickling endpoint) and the Chromium binary (required: the browser tests fail, never skip, without it)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
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
    """What a test needs to know about the running origin."""

    url: str
    port: int
    page: bytes = PAGE
    trickle_delay: float = TRICKLE_DELAY


class OriginThread:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
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
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(runner, sock, ssl_context=self.ssl_context)
        await site.start()
        self._stop = asyncio.Event()
        self.ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> Origin:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("test origin did not start")
        scheme = "https" if self.ssl_context else "http"
        return Origin(url=f"{scheme}://127.0.0.1:{self.port}", port=self.port)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def bench_origin() -> Iterator[Origin]:
    thread = OriginThread()
    yield thread.start()
    thread.stop()


@pytest.fixture(scope="session")
def bench_tls_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """The same origin over TLS with a self-signed certificate (made with the openssl CLI)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    thread = OriginThread(ctx)
    yield thread.start()
    thread.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if path is None:
        pytest.fail(
            "the browser tests need Debian's chromium: run `apt-get install -y chromium` "
            "(the test set-up script installs it before the tests)",
            pytrace=False,
        )
    return path
