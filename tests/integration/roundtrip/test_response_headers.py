"""Response headers over real sockets: no origin authority reaches the client in any header, and HEAD
answers with the headers GET sends."""

from __future__ import annotations

import urllib.parse

import aiohttp

from sluicegate.dev.origin.recording import Received, RecordingOrigin
from tests.support.servers import ProxyProcess

PUBLIC = "www.pub.test"


def spellings(auth: str) -> list[str]:
    """Ways an origin writes its own URL in a header value."""
    esc = f"https:\\/\\/{auth}\\/esc"
    return [
        f"http://{auth}/a",
        f"https://{auth}/b?x=1",
        f"//{auth}/c",
        f"HTTP://{auth.upper()}/d",
        esc,
        f'<http://{auth}/e>; rel="https://api.w.org/"',
        f"{auth}",
        f"0; url=http://{auth}/f",
    ]


NAMES = [
    "Location",
    "Content-Location",
    "Refresh",
    "Link",
    "X-Pingback",
    "X-Canonical",
    "X-Redirect-By",
    "Access-Control-Allow-Origin",
    "Timing-Allow-Origin",
    "Content-Security-Policy",
    "Content-Security-Policy-Report-Only",
    "Report-To",
    "Reporting-Endpoints",
    "NEL",
    "X-Frame-Options",
    "Alt-Svc",
    "X-Shortlink",
    "X-Api-Root",
    "X-Logout",
    "X-Login-Url",
    "X-Debug-Url",
    "Server-Timing",
    "X-Cache-Key",
    "X-Served-By",
    "Permissions-Policy",
    "X-Upstream",
    "X-Feed",
    "X-Sitemap",
    "X-Hub",
    "X-Custom-Json",
]


def headers_page(origin: RecordingOrigin, rec: Received) -> tuple[int, list[tuple[str, str]], bytes]:
    auth = origin.authority
    out: list[tuple[str, str]] = []
    forms = spellings(auth)
    for i, name in enumerate(NAMES):
        out.append((name, forms[i % len(forms)] + ", " + forms[(i + 3) % len(forms)]))
    out += [
        ("Set-Cookie", "sid=1; Domain=127.0.0.1; Path=/"),
        ("Set-Cookie", f"next=http://{auth}/x; Path=/"),
        ("Content-Type", "application/octet-stream"),
    ]
    return 302, out, b""


def leaks(value: str, auth: str) -> bool:
    v = urllib.parse.unquote(value.replace("\\/", "/")).lower()
    return auth in v


async def test_thirty_headers_carry_no_origin_authority(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    assert len(NAMES) == 30
    rt_origin.handler = headers_page
    async with (
        aiohttp.ClientSession() as s,
        s.get(rt_proxy.url + "/h", headers={"Host": PUBLIC}, allow_redirects=False) as r,
    ):
        got = [(k.decode(), v.decode("latin-1")) for k, v in r.raw_headers]
    by_name = {k.lower() for k, _ in got}
    for name in NAMES:
        assert name.lower() in by_name, name  # nothing was dropped to hide a leak
    auth = rt_origin.authority
    assert [(k, v) for k, v in got if leaks(v, auth)] == []
    d = dict((k.lower(), v) for k, v in got)
    assert d["location"] == f"http://{PUBLIC}/a, http://{PUBLIC}/d"
    assert d["x-pingback"] == f"http:\\/\\/{PUBLIC}\\/esc, 0; url=http://{PUBLIC}/f"
    cookies = [v for k, v in got if k.lower() == "set-cookie"]
    assert f"next=http://{PUBLIC}/x; Path=/" in cookies
    assert "sid=1; Path=/" in cookies or f"sid=1; Domain={PUBLIC}; Path=/" in cookies


async def test_head_sends_the_headers_get_sends(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    body = f'<a href="http://{rt_origin.authority}/x">x</a>'.encode()

    def page(origin: RecordingOrigin, rec: Received) -> tuple[int, list[tuple[str, str]], bytes]:
        return (
            200,
            [
                ("Content-Type", "text/html"),
                ("ETag", '"p1"'),
                ("Content-Length", str(len(body))),
                ("X-Pingback", f"http://{origin.authority}/xmlrpc.php"),
            ],
            body,
        )

    rt_origin.handler = page
    async with aiohttp.ClientSession() as s:
        async with s.get(rt_proxy.url + "/p", headers={"Host": PUBLIC}) as r:
            get_h = {k.decode().lower(): v.decode() for k, v in r.raw_headers}
            get_body = await r.read()
        async with s.head(rt_proxy.url + "/p", headers={"Host": PUBLIC}) as r:
            head_h = {k.decode().lower(): v.decode() for k, v in r.raw_headers}
    assert get_body == f'<a href="http://{PUBLIC}/x">x</a>'.encode()
    assert "content-length" not in head_h  # the origin's length would not match the rewritten GET body
    assert head_h["etag"] == get_h["etag"] == 'W/"p1"'
    assert head_h["x-pingback"] == get_h["x-pingback"] == f"http://{PUBLIC}/xmlrpc.php"
    # framing differs (RFC 9110 9.3.2: a HEAD answer may omit fields known only while generating the content):
    # GET of a small page rewritten in one pass carries the rewritten body's own Content-Length
    skip = {"date", "x-request-id", "transfer-encoding", "content-length"}
    assert {k: v for k, v in head_h.items() if k not in skip} == {k: v for k, v in get_h.items() if k not in skip}


async def test_revalidation_keeps_the_weak_etag(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    body = f'<a href="http://{rt_origin.authority}/x">x</a>'.encode()

    def page(origin: RecordingOrigin, rec: Received) -> tuple[int, list[tuple[str, str]], bytes]:
        if rec.header("if-none-match") in (b'W/"p2"', b'"p2"'):  # weak comparison, as nginx and most CMSs
            return 304, [("ETag", '"p2"'), ("Content-Length", "0")], b""
        return 200, [("Content-Type", "text/html"), ("ETag", '"p2"'), ("Accept-Ranges", "bytes")], body

    rt_origin.handler = page
    async with aiohttp.ClientSession() as s:
        async with s.get(rt_proxy.url + "/p", headers={"Host": PUBLIC}) as r:
            etag = r.headers["ETag"]
            assert "Accept-Ranges" not in r.headers  # ranges of the origin's bytes are not ranges of these
        async with s.get(rt_proxy.url + "/p", headers={"Host": PUBLIC, "If-None-Match": etag}) as r:
            assert r.status == 304
            assert r.headers["ETag"] == etag == 'W/"p2"'


async def test_named_header_rules_over_sockets(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    """Each named rule of #12 against a real origin: CSP (with a wildcard), CORS, Timing-Allow-Origin,
    Set-Cookie Domain and value, Link with a foreign rel URI, Refresh."""
    a = rt_origin.authority

    def rules(origin: RecordingOrigin, rec: Received) -> tuple[int, list[tuple[str, str]], bytes]:
        return (
            200,
            [
                ("Content-Type", "application/octet-stream"),
                ("Content-Security-Policy", f"default-src 'self' http://{a}; img-src *.127.0.0.1 data:"),
                ("Content-Security-Policy-Report-Only", f"script-src //{a} 'nonce-x'; report-uri http://{a}/csp"),
                ("Access-Control-Allow-Origin", f"http://{a}"),
                ("Timing-Allow-Origin", f"http://{a}, https://cdn.example.net"),
                ("Set-Cookie", "sid=1; Domain=127.0.0.1; Path=/; HttpOnly"),
                ("Set-Cookie", f"back=http://{a}/cart; Domain=other.example"),
                ("Link", f'<http://{a}/wp-json/>; rel="https://api.w.org/"'),
                ("Refresh", f"5; url=http://{a}/next"),
            ],
            b"x",
        )

    rt_origin.handler = rules
    async with aiohttp.ClientSession() as s, s.get(rt_proxy.url + "/r", headers={"Host": PUBLIC}) as r:
        got = [(k.decode().lower(), v.decode()) for k, v in r.raw_headers]
    d = dict(got)
    p = PUBLIC
    # (a wildcard over an IP is not a host wildcard: it stays as written and no public host is added)
    assert d["content-security-policy"] == f"default-src 'self' http://{p}; img-src *.127.0.0.1 data:"
    assert d["content-security-policy-report-only"] == f"script-src //{p} 'nonce-x'; report-uri http://{p}/csp"
    assert d["access-control-allow-origin"] == f"http://{p}"
    assert d["timing-allow-origin"] == f"http://{p}, https://cdn.example.net"
    assert [v for k, v in got if k == "set-cookie"] == [
        f"sid=1; Domain={p}; Path=/; HttpOnly",
        f"back=http://{p}/cart; Domain=other.example",
    ]
    assert d["link"] == f'<http://{p}/wp-json/>; rel="https://api.w.org/"'
    assert d["refresh"] == f"5; url=http://{p}/next"
