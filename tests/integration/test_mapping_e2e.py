"""The one mapping through the real proxy (#12 §1-3, #22 outbound): a real origin that links to its
aliases and to itself in escaped, percent-encoded and entity-encoded spellings, in text and in a
long inline script, behind `sluicegate serve` with `origin_aliases` configured."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web

from tests.support.configs import publisher_config
from tests.support.servers import ProxyProcess, ThreadedApp, free_port, raw_http

PUBLISHER = """origin_aliases = ["www.site.test", "site-internal:8443"]
origin_host_header = "site.test"
"""
EXTRA = """
[html]
max_tag_bytes = 65536
"""


def page(o: str) -> str:
    auth = o.split("://", 1)[1]
    script = ("var api='" + o + "/wp-json/';" + "x" * 90 + "\n") * 3000  # ~300 KB inline script
    return f"""<!doctype html><html><head><title>{o}/ home</title>
<link rel=alternate href="/embed?url=http%3A%2F%2F{auth}%2Fhello%2F">
<link rel=canonical href="https://www.site.test/">
</head><body>
<a href="http://site.test/a">host header name</a> <a href="https://site-internal:8443/b">internal</a>
<a href="https://{auth.split(':')[0]}&#46;&#x3a;{auth.split(':')[1]}/c">entities</a>
<a href="/share?u={o.replace(':', '%3A').replace('/', '%2F')}%2Fd&amp;t=1">share</a>
<p>Read {o}/about or www.site.test today.</p>
<script>{script}</script>
<img src="data:image/gif;base64,{'A' * 100_000}" data-href="{o}/after-big-attr">
</body></html>"""


def bad_page(o: str) -> str:
    host, port = o.split("://", 1)[1].split(":")
    return f'<html><body><img data-x="{"A" * 100_000}" href="http://{host}&#46;&#58;{port}/p"></body></html>'


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedApp, ProxyProcess]]:
    port = free_port()
    o = f"http://127.0.0.1:{port}"
    app = web.Application()

    async def home(_: web.Request) -> web.Response:
        return web.Response(text=page(o), content_type="text/html")

    async def bad(_: web.Request) -> web.Response:
        return web.Response(text=bad_page(o), content_type="text/html")

    app.router.add_get("/", home)
    app.router.add_get("/bad", bad)
    server = ThreadedApp(app, port).start()
    proxy = ProxyProcess(tmp_path_factory.mktemp("mapping"), publisher_config(o, PUBLISHER, EXTRA)).start()
    yield server, proxy
    proxy.stop()
    server.stop()


def authorities(html: str) -> set[str]:
    text = re.sub(r"[\t\n\r]", "", unquote(unescape(html))).lower()
    return {m.rstrip(".") for m in re.findall(r"(?:https?:)?//([a-z0-9.\-]+(?::[0-9]+)?)", text)}


async def test_no_origin_authority_reaches_the_client(site: tuple[ThreadedApp, ProxyProcess]) -> None:
    server, proxy = site
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/") as r:
        assert r.status == 200
        body = await r.text()
    origin_auths = {f"127.0.0.1:{server.port}", "site.test", "www.site.test", "site-internal:8443"}
    direct = authorities(page(server.url))
    assert origin_auths <= direct | {"site.test"}  # the page really names them all
    seen = authorities(body)
    assert not (seen & origin_auths), seen & origin_auths
    public = f"127.0.0.1:{proxy.port}"
    assert f"<title>http://{public}/ home</title>" in body
    assert f"Read http://{public}/about or {public} today." in body
    assert f"url=http%3A%2F%2F127.0.0.1%3A{proxy.port}%2Fhello%2F" in body
    assert body.count(f"var api='http://{public}/wp-json/'") == 3000
    assert f'data-href="http://{public}/after-big-attr"' in body


def test_overlong_tag_with_escaped_origin_aborts(site: tuple[ThreadedApp, ProxyProcess]) -> None:
    server, proxy = site
    req = f"GET /bad HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\nConnection: close\r\n\r\n".encode()
    data, _ = raw_http(proxy.port, req)
    assert f"127.0.0.1&#46;&#58;{server.port}".encode() not in data  # the unrewritten tag never left
    # refused before the response was committed (502) or, after commit, an unfinished chunked body
    assert data.startswith(b"HTTP/1.1 502") or not data.endswith(b"0\r\n\r\n")
    log = Path(proxy.log_path).read_text(errors="replace")
    assert "html_overlong_tag" in log
