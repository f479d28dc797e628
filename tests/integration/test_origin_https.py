"""HTTPS origins through `sluicegate serve`: SNI, verification on by default, a custom CA bundle (`ca_file`),
kept-alive TLS connections, and WebSocket to a `wss` origin."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from tests.support.configs import publisher_config
from tests.support.pki import Pki
from tests.support.servers import ProxyProcess, ThreadedApp, free_port

TIMEOUTS = """
[timeouts]
connect = 2.0
first_byte = 2.0
idle = 2.0
"""


def config(origin_port: int, ca_line: str) -> str:
    return publisher_config(f"https://localhost:{origin_port}", ca_line + "\n", TIMEOUTS)


class TlsOrigin:
    def __init__(self, pki: Pki) -> None:
        cert, key = pki.leaf("origin")
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.sni: list[str | None] = []
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore[assignment]
        self.peers: list[int] = []

        async def page(request: web.Request) -> web.Response:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.peers.append(peer[1] if peer else 0)
            return web.Response(text=f'<a href="https://localhost:{self.port}/x">x</a>', content_type="text/html")

        app = web.Application()
        app.router.add_get("/page", page)
        self.server = ThreadedApp(app, ssl_context=self.ctx)
        self.port = self.server.port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def origin(pki: Pki) -> Iterator[TlsOrigin]:
    o = TlsOrigin(pki)
    o.server.start()
    yield o
    o.server.stop()


def _proxy(tmp: Path, port: int, ca_file: Path | None) -> ProxyProcess:
    ca_line = f'ca_file = "{ca_file}"' if ca_file else ""
    return ProxyProcess(tmp, config(port, ca_line)).start()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def test_ca_file_verifies_the_origin_with_sni_and_connections_are_kept(
    tmp_path: Path, pki: Pki, origin: TlsOrigin
) -> None:
    p = await asyncio.to_thread(_proxy, tmp_path, origin.port, pki.ca)
    try:
        origin.sni.clear()
        origin.peers.clear()
        for _ in range(5):
            status, body = await _get(p.url + "/page")
            assert status == 200
            assert f'href="http://127.0.0.1:{p.port}/x"' in body
        assert origin.sni == ["localhost"]  # one TLS handshake, with SNI = the origin's host name
        assert len(set(origin.peers)) == 1  # five requests over one kept-alive TLS connection
    finally:
        p.stop()


async def test_verification_is_on_by_default_and_another_ca_is_refused(
    tmp_path: Path, pki: Pki, origin: TlsOrigin, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = Pki(tmp_path_factory.mktemp("other-ca"))
    for ca in (None, other.ca):  # the system store, then a bundle that did not sign the origin
        p = await asyncio.to_thread(_proxy, tmp_path, origin.port, ca)
        try:
            status, body = await _get(p.url + "/page")
            assert status == 502 and "cannot connect to origin" in body
        finally:
            p.stop()


async def test_websocket_to_a_wss_origin(tmp_path: Path, pki: Pki) -> None:
    cert, key = pki.leaf("wss-origin")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    port = free_port()
    async with serve(echo, "127.0.0.1", port, ssl=ctx):
        p = await asyncio.to_thread(_proxy, tmp_path, port, pki.ca)
        try:
            async with connect(f"ws://127.0.0.1:{p.port}/", ping_interval=None) as ws:
                await ws.send("to a wss origin")
                assert await ws.recv() == "to a wss origin"
        finally:
            p.stop()


def test_an_unusable_ca_file_is_one_line_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "bundle.pem"
    bad.write_text("not a certificate\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(config(9, f'ca_file = "{bad}"').replace("{port}", "0"))
    r = subprocess.run([sys.executable, "-m", "sluicegate", "serve", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert f"publisher.ca_file: cannot load {bad}: no PEM certificate in it" in lines[0]
