"""The round trip, as a property over real sockets.

For a generated page whose links, query values, form fields and cookie carry origin URLs in many
spellings: following each link of the page fetched *through the proxy* (and submitting its form, with
its cookie) sends the origin byte for byte the request that doing the same on the page fetched
*directly* sends; only ``Host`` and the forwarding headers the proxy adds may differ.

The property holds whatever the outbound mapping does with a spelling: a form it maps must be mapped
back exactly; a form it leaves alone must arrive untouched. So it keeps holding as the outbound
mapping learns more spellings (percent-encoded forms are generated here already).
"""

from __future__ import annotations

import http.client
import re
import urllib.parse
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluicegate.dev.origin.recording import Received, RecordingOrigin
from tests.integration.conftest import PROXY_CONFIG
from tests.support.servers import ProxyProcess

IGNORED = {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "via", "x-request-id", "forwarded"}


class Page:
    """What the origin serves at /page: the generated HTML and a cookie."""

    html = b""
    cookie = ""


def serve(origin: RecordingOrigin, rec: Received) -> tuple[int, list[tuple[str, str]], bytes]:
    if rec.target == b"/page":
        return 200, [("Content-Type", "text/html"), ("Set-Cookie", Page.cookie)], Page.html
    return 200, [("Content-Type", "application/octet-stream")], b"ok"


@pytest.fixture(scope="module")
def origin() -> Iterator[RecordingOrigin]:
    o = RecordingOrigin(handler=serve).start()
    yield o
    o.stop()


@pytest.fixture(scope="module")
def proxy(origin: RecordingOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    p = ProxyProcess(Path(tmp_path_factory.mktemp("rt-prop")), PROXY_CONFIG.format(origin=origin.url, mode="stream"))
    p.start()
    yield p
    p.stop()


# -- page generation --------------------------------------------------------------------------------

SEGMENT = st.text(alphabet="abcdefxyz0129-_.~", min_size=1, max_size=8)


def encode_uri_component(s: str, lower: bool) -> str:
    out = urllib.parse.quote(s, safe="-_.!~*'()")
    return _lower_hex(out) if lower else out


def php_urlencode(s: str, lower: bool) -> str:
    out = urllib.parse.quote_plus(s, safe="")
    return _lower_hex(out) if lower else out


def _lower_hex(s: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), s)


ENCODERS = {"encodeURIComponent": encode_uri_component, "php_urlencode": php_urlencode}
Item = tuple[str, str, str, str, bool]  # (kind, template, inner URL, encoder, lower-case hex)


@st.composite
def pages(draw: st.DrawFn) -> list[Item]:
    """Page items. In a template ``{O}`` is the authority, ``{V}`` the inner URL percent-encoded (by
    ``encoder``, hex case ``lower``) and ``{D}`` that encoded once more; all are filled in at render
    time, so an encoded value encodes the real authority.

    Not generated: a bare authority percent-encoded on its own (``u=127.0.0.1%3A9000``), or inside a
    form field that is itself an encoded query: when the public host has no port, nothing near the
    authority tells whether the origin encoded its ``:`` (docs/round-trip.md, "What cannot come back
    exactly"). A bare authority written literally (``?s=127.0.0.1:9000``) is generated."""
    items: list[Item] = []
    inners = ["http://{O}/{p2}?x=1&y=2", "//{O}/{p2}", "http://{O}/"]
    for _ in range(draw(st.integers(1, 7))):
        p1, p2 = draw(SEGMENT), draw(SEGMENT)
        inner = draw(st.sampled_from(inners)).replace("{p2}", p2)
        enc = draw(st.sampled_from(sorted(ENCODERS)))
        lower = draw(st.booleans())
        href = draw(
            st.sampled_from(
                [
                    f"http://{{O}}/{p1}",
                    f"//{{O}}/{p1}?q={p2}",
                    f"/{p1}?url={{V}}",
                    f"http://{{O}}/{p1}?a=1&amp;next={{V}}",
                    f"/{p1}?next=http://{{O}}/{p2}&amp;n=2",
                    f"/{p1}?u={{V}}&amp;bad=%zz&amp;trunc=%2",
                    f"/{p1}?dbl={{D}}",
                    f"HTTP://{{O}}/{p1}?s={{O}}",
                ]
            )
        )
        items.append(("a", href, inner, enc, lower))
    field = draw(st.sampled_from(["http://{O}/wp-admin/", "//{O}/x?y=1", "/plain", "{O}"]))
    items.append(("form", field, "", "", False))
    return items


def render(items: list[Item], auth: str, twice_encoded_auth: str = "") -> bytes:
    """The page with ``auth`` as the authority; ``twice_encoded_auth`` (default ``auth``) in the values
    encoded twice, which the outbound mapping does not recognise and so leaves as the origin wrote them."""
    body = []
    for kind, t, inner, enc, lower in items:
        if kind == "a":
            value = ENCODERS[enc](inner.replace("{O}", auth), lower)
            twice = ENCODERS[enc](inner.replace("{O}", twice_encoded_auth or auth), lower)
            href = t.replace("{V}", value).replace("{D}", urllib.parse.quote(twice, safe="")).replace("{O}", auth)
            body.append(f'<a href="{href}">link</a>')
        else:
            t = t.replace("{O}", auth)
            ref = php_urlencode(t, False) if "/" in t else t  # (a bare authority is not encoded alone)
            body.append(
                f'<form method="post" action="http://{auth}/wp-login.php">'
                f'<input type="hidden" name="redirect_to" value="{t}">'
                f'<input type="hidden" name="_wp_http_referer" value="/wp-login.php?r={ref}">'
                "</form>"
            )
    return ("<!doctype html><html><body>" + "\n".join(body) + "</body></html>").encode()


class Links(HTMLParser):
    """What a browser would follow: hrefs, and each form's action plus its fields (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.forms: list[tuple[str, list[tuple[str, str]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a":
            self.hrefs.append(a["href"])
        elif tag == "form":
            self.forms.append((a["action"], []))
        elif tag == "input" and self.forms:
            self.forms[-1][1].append((a["name"], a["value"]))


# -- the browser ------------------------------------------------------------------------------------


def fetch_page(port: int, host: str) -> tuple[bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/page", headers={"Host": host, "Accept-Encoding": "identity"})
    r = conn.getresponse()
    body = r.read()
    cookie = (r.getheader("set-cookie") or "").split(";", 1)[0]
    conn.close()
    return body, cookie


def follow(
    origin: RecordingOrigin, port: int, page_url: str, url: str, cookie: str, method: str = "GET", body: bytes = b""
) -> Received | None:
    """Send what a browser sends for ``url`` from the page at ``page_url``; what the origin received."""
    target = urllib.parse.urljoin(page_url, url)
    parts = urllib.parse.urlsplit(target)
    page_host = urllib.parse.urlsplit(page_url).netloc
    if parts.netloc.lower() != page_host.lower():
        return None  # another site: not followed through this host
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    before = len(origin.received)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", page_host)
    conn.putheader("Referer", page_url)
    conn.putheader("Cookie", cookie)
    if method == "POST":
        conn.putheader("Origin", f"http://{page_host}")
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body or None)
    conn.getresponse().read()
    conn.close()
    assert len(origin.received) == before + 1
    return origin.received[-1]


def comparable(rec: Received) -> tuple[str, bytes, list[tuple[bytes, bytes]], bytes]:
    headers = [(k.lower(), v) for k, v in rec.headers if k.decode().lower() not in IGNORED]
    return rec.method, rec.target, headers, rec.body


def browse(
    origin: RecordingOrigin, port: int, host: str, page: tuple[bytes, str] | None = None
) -> list[Received | None]:
    html, cookie = page or fetch_page(port, host)
    page_url = f"http://{host}/page"
    links = Links()
    links.feed(html.decode())
    got = [follow(origin, port, page_url, href, cookie) for href in links.hrefs]
    for action, fields in links.forms:
        body = urllib.parse.urlencode(fields).encode()  # what a browser submits (spaces as '+')
        got.append(follow(origin, port, page_url, action, cookie, "POST", body))
    return got


@pytest.mark.parametrize("public", ["www.pub.test", "127.0.0.1:{port}"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=pages(), cookie_inner=st.sampled_from(["http://{O}/cart", "//{O}/", "/local"]))
def test_following_links_through_the_proxy_is_exact(
    origin: RecordingOrigin, proxy: ProxyProcess, public: str, items: list[Item], cookie_inner: str
) -> None:
    public = public.format(port=proxy.port)
    auth = origin.authority
    Page.html = render(items, auth)
    Page.cookie = "back=" + encode_uri_component(cookie_inner.replace("{O}", auth), False) + "; Path=/"
    direct = browse(origin, origin.port, auth)
    proxied = browse(origin, proxy.port, public)
    assert len(direct) == len(proxied)
    for d, p in zip(direct, proxied, strict=True):
        if p is None:
            # the proxied page still links to the origin itself: the browser would go there directly,
            # which is the direct request by definition (a leak is #12's to find, not a round-trip break)
            continue
        assert d is not None
        assert comparable(p) == comparable(d)


@pytest.mark.parametrize("public", ["www.pub.test", "127.0.0.1:{port}"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=pages(), cookie_inner=st.sampled_from(["http://{O}/cart", "//{O}/", "/local"]))
def test_every_spelling_mapped_outbound_comes_back_exact(
    origin: RecordingOrigin, proxy: ProxyProcess, public: str, items: list[Item], cookie_inner: str
) -> None:
    """The same property against the outbound mapping as it is meant to be when complete: the page the
    browser gets has every spelling of the origin -- plain, percent-encoded in either hex case, in query
    values, in form fields, in the cookie -- written with the public host (the page rendered with the
    public authority; a value encoded twice keeps the origin's, as the outbound mapping only
    recognises URLs encoded once). Following its links through the proxy still sends the origin what the direct
    page's links send, which exercises every inbound path whatever the outbound mapping does today."""
    public = public.format(port=proxy.port)
    auth = origin.authority
    Page.html = render(items, auth)
    Page.cookie = "back=" + encode_uri_component(cookie_inner.replace("{O}", auth), False) + "; Path=/"
    direct = browse(origin, origin.port, auth)
    page = (
        render(items, public, twice_encoded_auth=auth),
        "back=" + encode_uri_component(cookie_inner.replace("{O}", public), False),
    )
    proxied = browse(origin, proxy.port, public, page)
    assert len(direct) == len(proxied)
    for d, p in zip(direct, proxied, strict=True):
        assert d is not None and p is not None
        assert comparable(p) == comparable(d)
