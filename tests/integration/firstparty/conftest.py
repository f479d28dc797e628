"""Real servers for the first-party tests: a third party (127.0.0.1), a decoy on 127.0.0.2 that must
never be reached, a publisher origin, and ``sluicegate serve`` with [first_party] + [identity]."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.servers import ProxyProcess, ThreadedApp, free_port

K1 = "k1-first-party-signing-key-0123456789abcdef"
K2 = "k2-first-party-signing-key-fedcba9876543210"
SECRET = "identity-secret-for-tests-0123456789-abcdef"


@dataclass
class Seen:
    requests: list[dict[str, object]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    first_chunk_sent: threading.Event = field(default_factory=threading.Event)
    creative_release: threading.Event = field(default_factory=threading.Event)


async def write_cut(resp: web.StreamResponse, body: bytes, cuts: list[int],
                    last_waits: threading.Event | None = None) -> None:
    """``body`` written in pieces ending at ``cuts`` (a pause after each: separate reads at the proxy), then the
    rest and the end; with ``last_waits`` the last cut piece waits for that event first."""
    pos = 0
    for i, at in enumerate(cuts):
        if last_waits is not None and i == len(cuts) - 1:
            await asyncio.get_running_loop().run_in_executor(None, last_waits.wait, 10)
        await resp.write(body[pos:at])
        await asyncio.sleep(0.02)
        pos = at
    await resp.write(body[pos:])
    await resp.write_eof()


def third_party_app(seen: Seen, port: int) -> web.Application:
    app = web.Application()
    base = f"http://cdn.fp.test:{port}"

    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        seen.requests.append({"path": request.path_qs, "headers": dict(request.headers), "host": request.host})
        return await handler(request)

    app.middlewares.append(record)

    async def script(request: web.Request) -> web.Response:
        return web.Response(
            body=b"console.log('third party');",
            content_type="application/javascript",
            headers={
                "Set-Cookie": "tp=1; Path=/",
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Credentials": "true",
                "Cache-Control": "public, max-age=600",
            },
        )

    async def page(request: web.Request) -> web.Response:
        html = (
            f'<html><head><base href="https://elsewhere.example/"><link rel="stylesheet" href="{base}/style.css">'
            f'</head><body><img src="{base}/i.png"><img src="rel.png"><a href="{base}/landing?c=1">ad</a>'
            f'<a href="https://not-allowed.example/">x</a></body></html>'
        )
        return web.Response(text=html, content_type="text/html", headers={"Set-Cookie": "tp=2"})

    async def style(request: web.Request) -> web.Response:
        return web.Response(
            text=f".a{{background:url({base}/bg.png)}} .b{{background:url(https://not-allowed.example/x.png)}}",
            content_type="text/css",
        )

    async def redirect(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return web.Response(text="arrived")
        raise web.HTTPFound(f"/redirect/{n - 1}")

    async def to(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["u"]})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"headers": dict(request.headers), "query": request.query_string})

    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        await resp.write(b"first-chunk;")
        seen.first_chunk_sent.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, seen.release.wait, 10)
        await resp.write(b"rest")
        await resp.write_eof()
        return resp

    async def creative(request: web.Request) -> web.StreamResponse:
        """An ad creative with inline scripts, ``<noscript>`` and CSS naming allowed and other hosts,
        written in pieces cut inside URL literals, tags and a long script; the last piece waits for
        ``creative_release`` (the relay must have sent what came before)."""
        resp = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8", "Set-Cookie": "tp=3"})
        await resp.prepare(request)
        body = creative_html(port).encode()
        cuts = [body.index(b"a.js?k=1") - 5, body.index(b"pixel.gif") - 3, body.index(b"not-allowed.example/x") + 4,
                body.index(b"url(") + 2, body.index(b"<noscript>") + 5, body.index(b"ns.png") - 2,
                body.index(b"late.js") - 6, body.index(b"</body>")]
        await write_cut(resp, body, cuts, last_waits=seen.creative_release)
        return resp

    async def utf16(request: web.Request) -> web.Response:
        return web.Response(body=utf16_html(port), headers={"Content-Type": "text/html; charset=utf-16"})

    app.router.add_get("/creative.html", creative)
    app.router.add_get("/utf16.html", utf16)
    app.router.add_get("/a.js", script)
    app.router.add_get("/page.html", page)
    app.router.add_get("/style.css", style)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_get("/to", to)
    app.router.add_get("/echo", echo)
    app.router.add_get("/slow", slow)
    return app


def creative_html(port: int) -> str:
    """The document ``/creative.html`` serves (``http://cdn.fp.test:{port}/creative.html``)."""
    tp = f"http://cdn.fp.test:{port}"
    return (
        f'<html><head><script>var s=document.createElement("script");s.src="{tp}/a.js?k=1&v=2";'
        f"var p='//x.ads.fp.test:{port}/pixel.gif';var cfg={{\"u\":\"http:\\/\\/cdn.fp.test:{port}\\/a.js\"}};"
        f'var keep="https://not-allowed.example/x.js";var keep2="//not-allowed.example/y.js";'
        f'var j="javascript:void(0)";var d="data:text/javascript,alert(1)";var cat="{tp}/" + "a.js";'
        f"</script><style>.a{{background:url({tp}/bg.png)}}.c{{background:url(https://not-allowed.example/k.png)}}"
        f"</style></head><body><div style=\"background:url('{tp}/d.png')\">d</div>"
        f'<noscript><img src="{tp}/ns.png?x=1&amp;y=2"><img src="rel/ns2.png">'
        f'<img src="https://not-allowed.example/ns3.png"><a href="{tp}/landing">buy</a></noscript>'
        f"<script>{' ' * 40000}var late='{tp}/late.js';</script>"
        f'<a href="javascript:alert(2)">j</a><img src="data:image/png;base64,AAAA"></body></html>'
    )


def in_utf16le(ascii_text: str) -> str:
    """The characters whose UTF-16LE bytes are ``ascii_text`` (even length): CJK text that an
    ASCII parser would read as that markup."""
    return "".join(chr(ord(ascii_text[i + 1]) << 8 | ord(ascii_text[i])) for i in range(0, len(ascii_text), 2))


def utf16_html(port: int) -> bytes:
    """A UTF-16LE document naming an allowed host, with characters whose bytes read ``<base href=x >``
    in ASCII (what ``/proxy`` would remove): relayed byte for byte (the charset gate)."""
    text = f'<script>u="http://cdn.fp.test:{port}/a.js"</script>{in_utf16le("<base href=x >")}'
    return (text + f'<img src="http://cdn.fp.test:{port}/i">').encode("utf-16")


def site_css_text(tp_port: int) -> str:
    """The publisher stylesheet ``/site.css``: a rewrite domain in ``@import`` and ``url()`` (plain, quoted,
    scheme-relative), another host, a relative URL and a ``data:`` URL."""
    tp = f"cdn.fp.test:{tp_port}"
    return (
        f'@import "http://{tp}/style.css";\n'
        f".a{{background:url(http://{tp}/bg.png)}}\n"
        f".b{{background:url('//{tp}/b.png')}}\n"
        ".c{background:url(http://other.example/o.png)}\n"
        ".d{background:url(rel/d.png)}\n"
        ".e{background:url(data:image/png;base64,AAAA)}\n"
    )


def origin_app(seen: Seen, tp_port: int) -> web.Application:
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        seen.requests.append({"path": request.path_qs, "headers": dict(request.headers)})
        html = (
            f'<html><head><script src="http://cdn.fp.test:{tp_port}/a.js"></script></head>'
            f'<body><img src="http://cdn.fp.test:{tp_port}/i.png"><img src="http://other.example/i.png"></body></html>'
        )
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "public, max-age=60"})

    async def hold(request: web.Request) -> web.StreamResponse:
        seen.requests.append({"path": request.path_qs, "headers": dict(request.headers)})
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        await resp.write(b"<html><head><title>t</title></head><body>")
        seen.first_chunk_sent.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, seen.release.wait, 10)
        await resp.write(b"</body></html>")
        await resp.write_eof()
        return resp

    async def page_scripts(request: web.Request) -> web.Response:
        """Third-party URLs inside ``<noscript>`` and inline scripts (plain, JSON-escaped, a
        concatenation that must stay as it is, a host that is not a rewrite domain)."""
        tp = f"cdn.fp.test:{tp_port}"
        html = (
            f'<html><head><script>var s=document.createElement("script");s.src="http://{tp}/a.js?x=1&y=2";'
            f'var base="http://{tp}/" + "a.js";var o="http://other.example/o.js";</script>'
            f'<script type="application/json" id="cfg">{{"tag":"http:\\/\\/{tp}\\/a.js"}}</script></head>'
            f'<body><noscript><img src="http://{tp}/style.css?as=img" alt=""><iframe src="http://other.example/f"></iframe>'
            f"</noscript></body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    async def site_css(request: web.Request) -> web.StreamResponse:
        """The publisher's own stylesheet naming a rewrite domain, written in pieces cut inside its URLs."""
        resp = web.StreamResponse(headers={"Content-Type": "text/css; charset=utf-8",
                                           "Cache-Control": "public, max-age=60"})
        await resp.prepare(request)
        body = site_css_text(tp_port).encode()
        await write_cut(resp, body, [body.index(b"style.css") - 4, body.index(b"url(") + 2, body.index(b"bg.png") + 1])
        return resp

    app.router.add_get("/page", page)
    app.router.add_get("/page-scripts", page_scripts)
    app.router.add_get("/site.css", site_css)
    app.router.add_get("/hold", hold)
    return app


class Decoy:
    """A listener on 127.0.0.2 that counts connections: the SSRF guard must keep it at zero."""

    def __init__(self, port: int) -> None:
        self.hits = 0
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.hits += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\ndecoy")
            await writer.drain()
            writer.close()

        self.loop.run_until_complete(asyncio.start_server(on_conn, "127.0.0.2", self.port))
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> Decoy:
        self.thread.start()
        self.ready.wait(5)
        return self


CONFIG = """
[server]
host = "127.0.0.1"
port = {{port}}
trusted_proxies = ["127.0.0.1/32"]

[publisher]
origin_url = "http://127.0.0.1:{origin_port}"
public_hosts = ["127.0.0.1:{{port}}"]

[timeouts]
connect = 2.0
first_byte = 3.0
idle = 3.0

[first_party]
enabled = true
allowed_domains = ["cdn.fp.test", "*.ads.fp.test", "loop.fp.test", "meta.fp.test"]
rewrite_domains = ["cdn.fp.test"]
allow_private_addresses = {allow}
url_ttl = "5m"
resolve = {{ "cdn.fp.test" = "127.0.0.1", "x.ads.fp.test" = "127.0.0.1", "evil-ads.fp.test" = "127.0.0.1", \
"loop.fp.test" = "127.0.0.2", "meta.fp.test" = "169.254.169.254" }}

[identity]
enabled = true
geo_country_header = "x-geo-country"
geo_region_header = "x-geo-region"
forward_header = "x-sg-id"
max_age = "30d"
"""


@dataclass
class Env:
    proxy: ProxyProcess
    tp: Seen
    tp_port: int
    origin: Seen
    decoy: Decoy

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()

    def sign(self, url: str) -> str:
        from urllib.parse import quote

        status, _, body = self.get("/first-party/sign?url=" + quote(url, safe=""))
        assert status == 200, body
        href: str = json.loads(body)["href"]
        return href


def start(tmp: Path, origin_port: int, decoy_port: int, allow: str) -> ProxyProcess:
    cfg = CONFIG.format(origin_port=origin_port, allow=allow)
    env = {"SLUICEGATE_FIRST_PARTY_KEYS": f"{K2},{K1}", "SLUICEGATE_IDENTITY_SECRET": SECRET}
    return ProxyProcess(tmp, cfg, env=env).start()


@pytest.fixture(scope="module")
def fp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tp_seen, origin_seen = Seen(), Seen()
    tp_port = free_port()
    tp = ThreadedApp(third_party_app(tp_seen, tp_port), tp_port).start()
    origin = ThreadedApp(origin_app(origin_seen, tp_port)).start()
    decoy = Decoy(tp_port).start()
    proxy = start(tmp_path_factory.mktemp("fp"), origin.port, tp_port, '["127.0.0.1/32"]')
    yield Env(proxy, tp_seen, tp_port, origin_seen, decoy)
    proxy.stop()
    tp.stop()
    origin.stop()


def tc_string(purposes: set[int]) -> str:
    """A TCF v2 core string (test helper; the decoder itself is checked against IAB's library)."""
    fields = [
        (2, 6), (16000000000, 36), (16000000000, 36), (7, 12), (1, 12), (1, 6), (4 * 64 + 13, 12), (100, 12),
        (5, 6), (0, 1), (0, 1), (0, 12),
        (sum(1 << (24 - p) for p in purposes), 24), (0, 24), (0, 1), (3 * 64 + 4, 12),
        (0, 16), (0, 1), (0, 16), (0, 1),
    ]
    bits = "".join(format(v, f"0{w}b") for v, w in fields)
    bits += "0" * (-len(bits) % 8)
    return base64.urlsafe_b64encode(int(bits, 2).to_bytes(len(bits) // 8, "big")).rstrip(b"=").decode()
