"""``sluicegate check-site`` end to end as a tool, independent of how good the rewriter is today: it starts
its own sluicegate when given no proxy, and it catches a proxy that rewrites nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from tests.support import sites
from tests.support.servers import ThreadedApp

from .conftest import CHROMIUM, SITES, run_check_site, serve_site

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium", pytrace=False)


def naive_proxy(origin: str) -> ThreadedApp:
    """A reverse proxy that relays bytes and rewrites nothing (what check-site must flag)."""
    sessions: list[ClientSession] = []
    hop = {"host", "connection", "content-length", "transfer-encoding", "accept-encoding", "keep-alive"}

    async def relay(request: web.Request) -> web.Response:
        if not sessions:
            sessions.append(ClientSession(auto_decompress=True))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
        async with sessions[0].request(request.method, origin + request.path_qs, headers=headers,
                                       data=await request.read(), allow_redirects=False) as r:
            out = {k: v for k, v in r.headers.items() if k.lower() not in hop | {"content-encoding"}}
            return web.Response(status=r.status, headers=out, body=await r.read())

    async def close(_app: web.Application) -> None:
        for s in sessions:
            await s.close()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    app.on_cleanup.append(close)
    return ThreadedApp(app).start()


def test_a_proxy_that_rewrites_nothing_is_reported_worse(tmp_path: Path) -> None:
    origin = sites.start("nuxt")
    try:
        proxy = naive_proxy(origin.url)
        try:
            rc, report, text = run_check_site(origin.url + "/", tmp_path / "r.json", "--proxy-url", proxy.url,
                                              "--pages", "2")
        finally:
            proxy.stop()
    finally:
        origin.stop()
    assert rc == 1 and report["worse"]
    assert "RESULT: the proxied site is WORSE" in text
    home = report["pages"][0]
    # the module script, the stylesheet and the image go to the origin's authority
    assert any(u.endswith("/_nuxt/entry.js") for u in home["leaks"]), home["leaks"]
    assert any(u.endswith("/_nuxt/entry.css") for u in home["leaks"]), home["leaks"]
    assert any(u.endswith("/_nuxt/img/p1.svg") for u in home["leaks"]), home["leaks"]
    assert home["origin_refs"] and home["dom_diff_count"] > 0
    # the direct and proxied documents themselves loaded fine: what is flagged is the leaking, not an outage
    assert home["direct"]["status"] == home["proxied"]["status"] == 200
    assert report["totals"]["leaks"] >= 3
    # a cross-origin module script without CORS headers fails: the browser says so, the direct page does not
    assert home["new_console_errors"]


def test_it_starts_its_own_sluicegate_when_no_proxy_is_given(tmp_path: Path) -> None:
    origin = sites.start("gazette")
    try:
        rc, report, text = run_check_site(origin.url + "/", tmp_path / "r.json", "--pages", "2", "--forms", "none")
    finally:
        origin.stop()
    assert report["started_proxy"] is True
    assert report["proxy"].startswith("http://127.0.0.1:") and report["proxy"] != origin.url
    assert "(started for this check)" in text
    assert [p["url"] for p in report["pages"]] == [origin.url + "/", origin.url + "/news/"]
    for page in report["pages"]:
        assert page["public_url"].startswith(report["proxy"] + "/")
        assert page["direct"]["status"] == page["proxied"]["status"] == 200
        assert page["forms"] == []
        assert page["direct"]["requests"] >= 1 and page["proxied"]["requests"] >= 1
        assert page["direct"]["ttfb_ms"] is not None and page["proxied"]["load_ms"] is not None
    assert rc == (1 if report["worse"] else 0)


@pytest.mark.parametrize("name", sorted(SITES))
def test_an_ideal_proxy_is_reported_clean(name: str, tmp_path: Path) -> None:
    """No false positives: a second instance of the same site, configured with its own address as its URL, is
    exactly what a perfect rewriting proxy would serve. check-site must find nothing on any site, so every
    failure the fixture tests report through sluicegate is the proxy's, and each fixture can pass."""
    budget, least = SITES[name]
    with serve_site(name, tmp_path / "a") as origin, serve_site(name, tmp_path / "b") as twin:
        rc, report, text = run_check_site(origin + "/", tmp_path / "r.json", "--proxy-url", twin,
                                          "--pages", str(budget), "--forms", "all")
    assert len(report["pages"]) >= least
    assert report["totals"]["forms"] >= (1 if name in ("gazette", "cms", "nextjs") else 0)
    assert rc == 0, text[-6000:]


def test_text_split_by_network_timing_is_not_a_dom_difference() -> None:
    """Chromium makes one text node per network read of a JSON or text body; the proxy streams (a held tail, a
    sliced send), so the same text can arrive in two reads. The snapshot joins adjacent text nodes, as
    ``Node.normalize()`` does; a different text is still a difference."""
    import asyncio

    from sluicegate.sitecheck.browser import Browser

    body = ('[{"id": 1, "link": "http:\\/\\/site.example\\/hello-world\\/"}, ' * 20 + "{}]").encode()

    async def split(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(body[:-40])
        await asyncio.sleep(0.3)  # the two reads reach the browser apart
        await resp.write(request.query.get("tail", "").encode() or body[-40:])
        await resp.write_eof()
        return resp

    async def whole(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def visit(base: str) -> tuple[list[str], list[str], list[str]]:
        async with Browser(str(CHROMIUM)) as b:
            a = (await b.visit(base + "/whole")).dom
            s = (await b.visit(base + "/split")).dom
            d = (await b.visit(base + "/split?tail=" + "x" * 40)).dom
        return a, s, d

    app = web.Application()
    app.router.add_get("/whole", whole)
    app.router.add_get("/split", split)
    server = ThreadedApp(app).start()
    try:
        a, s, d = asyncio.run(visit(server.url))
    finally:
        server.stop()
    texts = [line for line in a if "#text" in line]
    assert len(texts) == 1 and "hello-world" in texts[0]
    assert s == a
    assert d != a
