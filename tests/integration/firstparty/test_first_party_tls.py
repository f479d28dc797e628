"""An https third party reached through the vetted address: TLS is still verified against the host name."""

from __future__ import annotations

import http.client
import ssl
import subprocess
from pathlib import Path

from aiohttp import web

from sluicegate.firstparty.signing import Signer, canonical_url
from tests.integration.firstparty.conftest import CONFIG, K1, K2, SECRET
from tests.support.servers import ProxyProcess, ThreadedApp


def test_https_third_party_verified_by_name_while_connecting_to_the_checked_address(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=secure.ads.fp.test",
         "-addext", "subjectAltName=DNS:secure.ads.fp.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.host)
        return web.Response(text="tls ok", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/x", handler)
    tp = ThreadedApp(app, ssl_context=ctx).start()
    cfg = CONFIG.format(origin_port=9, allow='["127.0.0.1/32"]').replace(
        '"x.ads.fp.test" = "127.0.0.1"', '"secure.ads.fp.test" = "127.0.0.1", "x.ads.fp.test" = "127.0.0.1"'
    )
    env = {"SLUICEGATE_FIRST_PARTY_KEYS": f"{K2},{K1}", "SLUICEGATE_IDENTITY_SECRET": SECRET,
           "SSL_CERT_FILE": str(cert)}
    proxy = ProxyProcess(tmp_path, cfg, env=env).start()
    signer = Signer([K1.encode()], "/first-party", 300)
    try:
        def get(url: str) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            try:
                conn.request("GET", signer.mint("proxy", canonical_url(url)))
                r = conn.getresponse()
                return r.status, r.read()
            finally:
                conn.close()

        status, body = get(f"https://secure.ads.fp.test:{tp.port}/x")
        assert (status, body) == (200, b"tls ok")
        assert seen == [f"secure.ads.fp.test:{tp.port}"]
        # same address, a name the certificate does not cover: refused by TLS verification
        status, body = get(f"https://x.ads.fp.test:{tp.port}/x")
        assert status == 502 and len(seen) == 1
    finally:
        proxy.stop()
        tp.stop()
