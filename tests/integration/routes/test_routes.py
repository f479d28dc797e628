"""The route table over real sockets: client <-> `sluicegate serve` <-> page backends + an asset store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.integration.routes.backends import DRIP_RELEASE, SELF, build_assets, build_site
from tests.support.servers import ProxyProcess, ThreadedApp, free_port, raw_http

CONFIG = """
[server]
host = "127.0.0.1"
port = {{port}}

[publisher]
origin_url = "{main}"
public_hosts = ["127.0.0.1:{{port}}", "assets.pub.test", "www.pub.test"]

[timeouts]
connect = 2.0
first_byte = 2.0
idle = 1.0

[[publisher.routes]]
name = "blog"
prefix = "/blog"
kind = "page"
origin_url = "{blog}"
path_pattern = "^/blog(/.*)?$"
target_path = "$1"

[[publisher.routes]]
name = "static"
prefix = "/static"
kind = "asset"
origin_url = "{assets}"
cache_control = "public, max-age=31536000, immutable"

[[publisher.routes]]
name = "img"
prefix = "/img/"
kind = "asset"
origin_url = "{assets}"
path_pattern = "^/img/([a-z0-9._-]+)$"
target_path = "/files/$1"
query = "strip"

[[publisher.routes]]
name = "hosted"
prefix = "/"
hosts = ["assets.pub.test"]
kind = "asset"
origin_url = "{assets}"

[[publisher.routes]]
name = "shop"
prefix = "/shop"
kind = "page"
origin_url = "{blog}"
query = "strip"
timeouts = {{ first_byte = "300ms" }}
"""

SMALL = os.urandom(2048)
BIG = os.urandom(3 * 1024 * 1024 + 17)


class Env:
    def __init__(self, proxy: ProxyProcess, main: ThreadedApp, blog: ThreadedApp, assets: ThreadedApp) -> None:
        self.proxy = proxy
        self.url = proxy.url
        self.main = main
        self.blog = blog
        self.assets = assets


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("routes")
    files = tmp / "files"
    files.mkdir()
    (files / "small.bin").write_bytes(SMALL)
    (files / "big.bin").write_bytes(BIG)
    apps = []
    for label in ("main", "blog"):
        port = free_port()
        app = build_site(label)
        app[SELF] = f"127.0.0.1:{port}"
        apps.append(ThreadedApp(app, port).start())
    assets = ThreadedApp(build_assets(files)).start()
    main, blog = apps
    text = CONFIG.format(main=main.url, blog=blog.url, assets=assets.url)
    proxy = ProxyProcess(tmp, text).start()
    yield Env(proxy, main, blog, assets)
    proxy.stop()
    for s in (main, blog, assets):
        s.stop()


async def fetch(url: str, method: str = "GET", **kwargs: object) -> tuple[aiohttp.ClientResponse, bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.request(method, URL(url, encoded=True), allow_redirects=False, **kwargs) as r,  # type: ignore[arg-type]
    ):
        return r, await r.read()


def hdrs(r: aiohttp.ClientResponse) -> dict[str, str]:
    return {k.decode().lower(): v.decode() for k, v in r.raw_headers}


# ---- §1 route table ----------------------------------------------------------------------------------------

async def test_fallback_page_route_is_origin_url(env: Env) -> None:
    r, body = await fetch(env.url + "/anything?x=1")
    assert r.status == 200 and hdrs(r)["x-backend"] == "main"
    assert f"http://127.0.0.1:{env.proxy.port}/item".encode() in body  # rewritten like today
    assert env.main.url.encode() not in body


async def test_page_route_has_its_own_origin_and_rewriting(env: Env) -> None:
    r, body = await fetch(env.url + "/blog/post/1?q=2")
    assert r.status == 200 and hdrs(r)["x-backend"] == "blog"
    # the blog backend's own authority is rewritten to the public host; the path was rewritten to /post/1
    assert f"http://127.0.0.1:{env.proxy.port}/item".encode() in body
    assert env.blog.url.encode() not in body
    assert b"/post/1?q=2" in body


async def test_prefix_matches_on_segment_boundary(env: Env) -> None:
    r, _ = await fetch(env.url + "/blogger")
    assert hdrs(r)["x-backend"] == "main"  # not /blog
    r, _body = await fetch(env.url + "/blog/")
    assert hdrs(r)["x-backend"] == "blog"


async def test_rewrite_to_a_non_path_is_502(env: Env) -> None:
    # "^/blog(/.*)?$" -> "$1": a bare /blog leaves $1 empty, which is no path: 502 with a clear body
    r, body = await fetch(env.url + "/blog")
    assert r.status == 502 and b"not a path" in body


async def test_rewrite_no_match_is_404(env: Env) -> None:
    r, _body = await fetch(env.url + "/img/UPPER.bin")
    assert r.status == 404
    r, _ = await fetch(env.url + "/img/small.bin")
    assert r.status == 200


async def test_dot_segments_refused_on_routes(env: Env) -> None:
    for path in ("/static/../echo", "/img/./small.bin", "/static/%2e%2e/echo"):
        data, _ = await asyncio.to_thread(
            raw_http, env.proxy.port, f"GET {path} HTTP/1.1\r\nHost: www.pub.test\r\nConnection: close\r\n\r\n".encode()
        )
        assert data.startswith(b"HTTP/1.1 400"), (path, data[:80])


async def test_query_strip_and_preserve(env: Env) -> None:
    _r, body = await fetch(env.url + "/shop/echo?secret=1", headers={"Host": "www.pub.test"})
    sent = json.loads(body)
    assert sent["backend"] == "blog" and sent["target"] == "/shop/echo"
    _r, body = await fetch(env.url + "/echo/x?keep=1", headers={"Host": "assets.pub.test"})
    assert json.loads(body)["target"] == "/echo/x?keep=1"


async def test_host_bound_route(env: Env) -> None:
    r, body = await fetch(env.url + "/files/small.bin", headers={"Host": "assets.pub.test"})
    assert r.status == 200 and body == SMALL
    r, _ = await fetch(env.url + "/files/small.bin", headers={"Host": "www.pub.test"})
    assert hdrs(r).get("x-backend") == "main"  # other hosts: the fallback page route
    r, _ = await fetch(env.url + "/files/small.bin", headers={"Host": "evil.test"})
    assert r.status == 421


async def test_per_route_timeout(env: Env) -> None:
    # the backend answers /slow after 0.6 s: within [timeouts] first_byte (2 s), not within shop's 300 ms
    r, _ = await fetch(env.url + "/slow")
    assert r.status == 200
    r, body = await fetch(env.url + "/shop/slow")
    assert r.status == 504
    r, body = await fetch(env.url + "/slow", headers={"Host": "assets.pub.test"})  # the store's /slow: 30 s
    assert r.status == 504 and b"did not answer in time" in body


async def test_metrics_labelled_by_route(env: Env) -> None:
    await fetch(env.url + "/img/small.bin")
    await fetch(env.url + "/blog/x")
    await fetch(env.url + "/elsewhere")
    await asyncio.sleep(0.3)
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(env.proxy.admin_url + "/metrics").read().decode())
    assert 'sluicegate_publisher_route_requests_total{kind="asset",route="img",status_class="2xx"}' in text
    assert 'sluicegate_publisher_route_requests_total{kind="page",route="blog",status_class="2xx"}' in text
    assert 'route="default"' in text
    assert 'sluicegate_publisher_route_upstream_headers_seconds_count{route="img"}' in text
    prefix = 'sluicegate_publisher_route_body_bytes_total{route="img"}'
    sent = [line for line in text.splitlines() if line.startswith(prefix)]
    assert sent and float(sent[0].split()[-1]) >= len(SMALL)


async def test_readiness_probes_each_backend(env: Env) -> None:
    def ready() -> dict[str, object]:
        with urllib.request.urlopen(env.proxy.admin_url + "/readyz") as r:
            return dict(json.loads(r.read()))

    state = await asyncio.to_thread(ready)
    names = {b["name"] for b in state["backends"]}  # type: ignore[union-attr]
    assert {"origin", "route:blog", "route:static", "route:img", "route:hosted", "route:shop"} <= names


# ---- §2 asset routes ---------------------------------------------------------------------------------------

async def test_asset_streams_with_content_length(env: Env) -> None:
    r, body = await fetch(env.url + "/img/big.bin")
    h = hdrs(r)
    assert r.status == 200 and h["content-length"] == str(len(BIG))
    assert hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()
    assert "transfer-encoding" not in h


async def test_asset_streams_chunk_by_chunk(env: Env) -> None:
    # the store sends "first;" and waits until this client has it: a buffering relay would deadlock into
    # "timed-out;" after 5 s
    DRIP_RELEASE.clear()
    async with aiohttp.ClientSession() as s, s.get(env.url + "/drip", headers={"Host": "assets.pub.test"}) as r:
        assert r.status == 200 and "content-length" not in r.headers
        first = await asyncio.wait_for(r.content.readexactly(6), 4)
        DRIP_RELEASE.set()
        rest = await r.content.read()
    assert first + rest == b"first;released;"


async def test_asset_methods(env: Env) -> None:
    r, body = await fetch(env.url + "/img/small.bin", method="POST", data=b"x")
    assert r.status == 405 and hdrs(r)["allow"] == "GET, HEAD"
    r, body = await fetch(env.url + "/img/small.bin", method="HEAD")
    assert r.status == 200 and hdrs(r)["content-length"] == str(len(SMALL)) and body == b""


async def test_outbound_header_allowlist(env: Env) -> None:
    _r, body = await fetch(
        env.url + "/echo/h",
        headers={
            "Host": "assets.pub.test", "Cookie": "sid=private", "Authorization": "Bearer client-token",
            "X-Forwarded-For": "1.2.3.4", "Forwarded": "for=1.2.3.4", "X-Custom": "no", "Referer": "https://r.test/",
            "Accept-Language": "fr", "If-None-Match": '"e"', "Range": "bytes=0-1", "User-Agent": "ua-test",
        },
    )
    sent = {k.lower(): v for k, v in json.loads(body)["headers"]}
    for private in ("cookie", "authorization", "x-forwarded-for", "forwarded", "x-custom", "via", "x-real-ip"):
        assert private not in sent, private
    assert sent["host"] == f"127.0.0.1:{env.assets.port}"
    assert sent["referer"] == "https://r.test/" and sent["accept-language"] == "fr"
    assert sent["if-none-match"] == '"e"' and sent["range"] == "bytes=0-1" and sent["user-agent"] == "ua-test"


async def test_private_response_headers_removed_and_cache_control_last(env: Env) -> None:
    # the asset store serves /leaky at its root: reached through the host-bound route (no cache_control)
    r, body = await fetch(env.url + "/leaky", headers={"Host": "assets.pub.test"})
    h = hdrs(r)
    assert r.status == 200 and len(body) == 100
    for gone in ("set-cookie", "strict-transport-security", "clear-site-data", "alt-svc", "x-private"):
        assert gone not in h, gone
    assert h["cache-control"] == "private, no-cache"  # no cache_control on this route: the backend's
    assert h["etag"] == '"leaky-1"'


async def test_cache_control_applied_on_2xx_304_only(env: Env) -> None:
    # static maps /static/x -> /static/x on the store (404 there): the error keeps the backend's header
    r, body = await fetch(env.url + "/static/small.bin")
    assert r.status == 200 and body == SMALL
    assert hdrs(r)["cache-control"] == "public, max-age=31536000, immutable"  # the backend said private
    r, _ = await fetch(env.url + "/static/small.bin", headers={"If-None-Match": hdrs(r)["etag"]})
    assert r.status == 304 and hdrs(r)["cache-control"] == "public, max-age=31536000, immutable"
    r, _ = await fetch(env.url + "/static/missing")
    assert r.status == 404 and hdrs(r)["cache-control"] == "no-store"


async def test_range_gives_206_untouched(env: Env) -> None:
    r, body = await fetch(env.url + "/img/big.bin", headers={"Range": "bytes=100-199"})
    h = hdrs(r)
    assert r.status == 206 and body == BIG[100:200]
    assert h["content-range"] == f"bytes 100-199/{len(BIG)}" and h["content-length"] == "100"


async def test_conditional_304_keeps_no_body(env: Env) -> None:
    r, _ = await fetch(env.url + "/img/small.bin")
    etag = hdrs(r)["etag"]
    r, body = await fetch(env.url + "/img/small.bin", headers={"If-None-Match": etag})
    assert r.status == 304 and body == b""


async def test_redirect_returned_not_followed(env: Env) -> None:
    r, _body = await fetch(env.url + "/redirect", headers={"Host": "assets.pub.test"})
    assert r.status == 302 and hdrs(r)["location"] == "/files/small.bin"


async def test_204_has_no_body(env: Env) -> None:
    data, _ = await asyncio.to_thread(
        raw_http, env.proxy.port, b"GET /nocontent HTTP/1.1\r\nHost: assets.pub.test\r\nConnection: close\r\n\r\n"
    )
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 204") and rest == b""
    assert b"content-length" not in head.lower()


async def test_truncated_backend_aborts_client(env: Env) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(env.url + "/truncated", headers={"Host": "assets.pub.test"})


async def test_stalled_backend_aborts_after_idle(env: Env) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(fetch(env.url + "/stall", headers={"Host": "assets.pub.test"}), 5)


async def test_backend_down_is_502(tmp_path: Path) -> None:
    dead = free_port()
    text = f"""
[server]
host = "127.0.0.1"
port = {{port}}
[publisher]
origin_url = "http://127.0.0.1:{dead}"
public_hosts = ["127.0.0.1:{{port}}"]
[[publisher.routes]]
name = "a"
prefix = "/a"
kind = "asset"
origin_url = "http://127.0.0.1:{dead}"
"""
    proxy = ProxyProcess(tmp_path, text).start()
    try:
        r, body = await fetch(proxy.url + "/a/x")
        assert r.status == 502 and b"cannot connect to the asset backend" in body
    finally:
        proxy.stop()


async def test_page_backend_down_is_not_ready_asset_down_is_reported(tmp_path: Path) -> None:
    live = ThreadedApp(build_site("live")).start()
    dead_page, dead_asset = free_port(), free_port()
    text = f"""
[server]
host = "127.0.0.1"
port = {{port}}
[admin]
listen = "127.0.0.1:{free_port()}"
probe_interval = "100ms"
[publisher]
origin_url = "{live.url}"
public_hosts = ["127.0.0.1:{{port}}"]
[[publisher.routes]]
name = "cdn"
prefix = "/cdn"
kind = "asset"
origin_url = "http://127.0.0.1:{dead_asset}"
[[publisher.routes]]
name = "shop"
prefix = "/shop"
kind = "page"
origin_url = "http://127.0.0.1:{dead_page}"
"""
    proxy = ProxyProcess(tmp_path, text).start()
    try:
        def readyz() -> tuple[int, dict[str, object]]:
            try:
                with urllib.request.urlopen(proxy.admin_url + "/readyz") as r:
                    return r.status, dict(json.loads(r.read()))
            except urllib.error.HTTPError as exc:
                return exc.code, dict(json.loads(exc.read()))

        for _ in range(50):
            status, state = await asyncio.to_thread(readyz)
            if any("route:shop" in str(x) for x in state["reasons"]):  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
        assert status == 503
        reasons = [str(x) for x in state["reasons"]]  # type: ignore[union-attr]
        assert any(x.startswith("route:shop: connect failed") for x in reasons), reasons
        assert not any("route:cdn" in x for x in reasons)  # an asset backend down: degraded, not down
        views = {b["name"]: b for b in state["backends"]}  # type: ignore[union-attr,index]
        assert views["route:cdn"]["up"] is False and views["origin"]["up"] is True  # type: ignore[index]
    finally:
        proxy.stop()
        live.stop()
