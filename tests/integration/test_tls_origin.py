"""An https origin through the publisher's own origin client: verified by default, opt-out only by config."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support.configs import publisher_config
from tests.support.servers import ProxyProcess, ThreadedApp

PORT = web.AppKey("port", int)

TIMEOUTS = """
[timeouts]
connect = 2.0
first_byte = 2.0
idle = 2.0
"""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_origin(certificate: tuple[Path, Path]) -> Iterator[ThreadedApp]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certificate)

    async def page(request: web.Request) -> web.Response:
        port = request.app[PORT]
        body = f'<a href="https://localhost:{port}/next">next</a> {request.method}'
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/page", page)
    server = ThreadedApp(app, ssl_context=ctx)
    app[PORT] = server.port
    server.start()
    yield server
    server.stop()


def _proxy(tmp: Path, origin: ThreadedApp, verify: bool, env: dict[str, str] | None = None) -> ProxyProcess:
    verify_line = f"verify_tls = {'true' if verify else 'false'}\n"
    cfg = publisher_config(f"https://localhost:{origin.port}", verify_line, TIMEOUTS)
    return ProxyProcess(tmp, cfg, env=env).start()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def test_unverifiable_origin_certificate_is_a_502(tmp_path: Path, tls_origin: ThreadedApp) -> None:
    p = _proxy(tmp_path, tls_origin, verify=True)
    try:
        status, body = await _get(p.url + "/page")
        assert status == 502
        assert "cannot connect to origin" in body
    finally:
        p.stop()


async def test_origin_certificate_verified_against_the_trust_store(
    tmp_path: Path, tls_origin: ThreadedApp, certificate: tuple[Path, Path]
) -> None:
    # The self-signed certificate becomes the trust store: verification (chain + host name) succeeds.
    p = _proxy(tmp_path, tls_origin, verify=True, env={"SSL_CERT_FILE": str(certificate[0])})
    try:
        status, body = await _get(p.url + "/page")
        assert status == 200
        assert f'href="http://127.0.0.1:{p.port}/next"' in body  # rewritten to the public host and scheme
    finally:
        p.stop()


async def test_verify_tls_false_accepts_a_self_signed_origin(tmp_path: Path, tls_origin: ThreadedApp) -> None:
    p = _proxy(tmp_path, tls_origin, verify=False)
    try:
        for _ in range(3):  # and the TLS connection is kept alive and reused
            status, body = await _get(p.url + "/page")
            assert status == 200 and body.endswith("GET")
    finally:
        p.stop()
