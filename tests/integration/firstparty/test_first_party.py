"""First-party endpoints and edge identity over real sockets: sluicegate serve, a real third party,
a real publisher origin, and a decoy on 127.0.0.2 that the SSRF guard must never let us reach."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from sluicegate.firstparty.signing import Signer, canonical_url
from tests.integration.firstparty.conftest import K1, K2, SECRET, Env, start, tc_string
from tests.support.servers import ProxyProcess, ThreadedApp

from .conftest import Seen, origin_app


def origin_header(env: Env, name: str) -> str | None:
    headers = env.origin.requests[-1]["headers"]
    assert isinstance(headers, dict)
    return next((v for k, v in headers.items() if k.lower() == name), None)


def tp_url(env: Env, path: str, host: str = "cdn.fp.test") -> str:
    return f"http://{host}:{env.tp_port}{path}"


def signed(url: str, key: str = K1, kind: str = "proxy", now: float | None = None, ttl: float = 300) -> str:
    return Signer([key.encode()], "/first-party", ttl).mint(kind, canonical_url(url), now=now)


# -- sign ------------------------------------------------------------------------------------------


def test_sign_mints_with_the_first_key_and_checks_the_allowlist(fp: Env) -> None:
    href = fp.sign(tp_url(fp, "/a.js?v=1#frag"))
    assert href.startswith("/first-party/proxy?url=")
    target = Signer([K2.encode()], "/first-party", 300).verify("proxy", href.split("?", 1)[1])
    assert target.url == tp_url(fp, "/a.js?v=1")
    for url, status in [
        ("https://not-allowed.example/x.js", 403),
        ("https://evil-ads.fp.test/x.js", 403),  # *.ads.fp.test is at a dot boundary
        ("javascript:alert(1)", 400),
        ("/relative.js", 400),
    ]:
        s, _, body = fp.get("/first-party/sign?url=" + quote(url, safe=""))
        assert s == status, (url, body)


# -- proxy: relay, headers -------------------------------------------------------------------------


def test_proxy_relays_with_allowlisted_headers_only(fp: Env) -> None:
    href = fp.sign(tp_url(fp, "/a.js"))
    before = len(fp.tp.requests)
    status, headers, body = fp.get(
        href,
        {
            "Cookie": "session=secret; sg_id=x",
            "Authorization": "Bearer client-token",
            "Referer": "https://www.publisher.example/article/42?user=me",
            "X-Forwarded-For": "198.51.100.7",
            "User-Agent": "test-agent",
            "Accept-Encoding": "gzip",
        },
    )
    assert status == 200 and body == b"console.log('third party');"
    assert headers.get("set-cookie") is None
    assert not [k for k in headers if k.lower().startswith("access-control-")]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"].startswith("sandbox ")
    seen = fp.tp.requests[before]["headers"]
    assert isinstance(seen, dict)
    low = {k.lower(): v for k, v in seen.items()}
    assert "cookie" not in low and "authorization" not in low and "x-forwarded-for" not in low
    assert low["referer"] == "https://www.publisher.example/"
    assert low["user-agent"] == "test-agent"
    assert low["host"] == f"cdn.fp.test:{fp.tp_port}"


def test_key_rotation_old_key_still_verifies(fp: Env) -> None:
    status, _, body = fp.get(signed(tp_url(fp, "/a.js"), key=K1))
    assert status == 200 and body.startswith(b"console.log")


@pytest.mark.parametrize("part", ["url", "exp", "sig"])
def test_tampered_url_is_403(fp: Env, part: str) -> None:
    params = dict(parse_qsl(fp.sign(tp_url(fp, "/a.js")).split("?", 1)[1]))
    params[part] = {
        "url": tp_url(fp, "/echo"),
        "exp": str(int(params["exp"]) + 100),
        "sig": ("B" if params["sig"][0] == "A" else "A") + params["sig"][1:],
    }[part]
    before = len(fp.tp.requests)
    status, _, _ = fp.get("/first-party/proxy?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items()))
    assert status == 403
    assert len(fp.tp.requests) == before


def test_expired_wrong_key_malformed(fp: Env) -> None:
    status, _, body = fp.get(signed(tp_url(fp, "/a.js"), now=time.time() - 1000, ttl=10))
    assert status == 403 and b"expired" in body
    status, _, _ = fp.get(signed(tp_url(fp, "/a.js"), key="k3-some-other-key-that-nobody-configured-here"))
    assert status == 403
    for q in ("", "url=x", "url=a&exp=zz&sig=" + "A" * 43, "url=a&exp=1&sig=" + "A" * 43 + "&more=1"):
        status, _, _ = fp.get("/first-party/proxy?" + q)
        assert status == 400, q


def test_proxy_refuses_non_allowlisted_even_when_signed(fp: Env) -> None:
    # a signature is not enough: a leaked key still does not make an open proxy
    status, _, _ = fp.get(signed(tp_url(fp, "/a.js", host="evil-ads.fp.test")))
    assert status == 403
    status, _, _ = fp.get(signed(f"http://127.0.0.1:{fp.tp_port}/a.js"))
    assert status == 403


# -- SSRF guard ------------------------------------------------------------------------------------


def test_private_and_metadata_addresses_are_refused(fp: Env) -> None:
    status, _, body = fp.get(signed(tp_url(fp, "/a.js", host="loop.fp.test")))
    assert status == 403 and b"loopback" in body
    status, _, body = fp.get(signed(tp_url(fp, "/latest/meta-data/", host="meta.fp.test")))
    assert status == 403 and b"metadata" in body
    assert fp.decoy.hits == 0


def test_loopback_refused_without_allow_private_addresses(tmp_path: Path, fp: Env) -> None:
    origin = ThreadedApp(origin_app(Seen(), fp.tp_port)).start()
    proxy = start(tmp_path, origin.port, fp.tp_port, "[]")
    try:
        before = len(fp.tp.requests)
        with socket.create_connection(("127.0.0.1", proxy.port)) as s:
            target = signed(tp_url(fp, "/a.js"))
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 403") and b"loopback" in data
        assert len(fp.tp.requests) == before
    finally:
        proxy.stop()
        origin.stop()


def test_redirects_are_rechecked_and_bounded(fp: Env) -> None:
    status, _, body = fp.get(signed(tp_url(fp, "/redirect/4")))
    assert status == 200 and body == b"arrived"
    status, _, body = fp.get(signed(tp_url(fp, "/redirect/5")))
    assert status == 502 and b"more than 4 redirects" in body
    status, _, _ = fp.get(signed(tp_url(fp, "/to?u=" + quote("https://not-allowed.example/", safe=""))))
    assert status == 403
    status, _, body = fp.get(signed(tp_url(fp, "/to?u=" + quote(f"http://loop.fp.test:{fp.tp_port}/", safe=""))))
    assert status == 403 and b"loopback" in body
    status, _, _ = fp.get(signed(tp_url(fp, "/to?u=" + quote("javascript:alert(1)", safe=""))))
    assert status == 403
    assert fp.decoy.hits == 0


# -- rewriting of proxied documents ---------------------------------------------------------------


def test_proxied_html_and_css_are_rewritten(fp: Env) -> None:
    status, headers, body = fp.get(fp.sign(tp_url(fp, "/page.html")))
    html = body.decode()
    assert status == 200 and headers.get("set-cookie") is None
    assert "<base" not in html
    assert html.count("/first-party/proxy?url=") == 3  # stylesheet, absolute img, relative img
    assert html.count("/first-party/click?url=") == 2  # the advertiser's landing page too: a signed redirect
    assert "https%3A%2F%2Fnot-allowed.example%2F" in html
    click = html.split('href="/first-party/click?')[1].split('"')[0].replace("&amp;", "&")
    status, headers, _ = fp.get("/first-party/click?" + click)
    assert status == 302 and headers["location"] == tp_url(fp, "/landing?c=1")
    assert "no-store" in headers["cache-control"]
    status, _, css = fp.get(fp.sign(tp_url(fp, "/style.css")))
    assert status == 200 and css.count(b"/first-party/proxy?url=") == 1 and b"not-allowed.example/x.png" in css


def test_proxy_streams(fp: Env) -> None:
    fp.tp.release.clear()
    fp.tp.first_chunk_sent.clear()
    href = fp.sign(tp_url(fp, "/slow"))
    with socket.create_connection(("127.0.0.1", fp.proxy.port), timeout=5) as s:
        s.sendall(f"GET {href} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while b"first-chunk;" not in data:
            data += s.recv(65536)
        assert not fp.tp.release.is_set()  # the third party is still holding the rest
        fp.tp.release.set()
        while b"rest" not in data:
            data += s.recv(65536)


# -- publisher pages -------------------------------------------------------------------------------


def test_publisher_page_rewrite_domains(fp: Env) -> None:
    status, _, body = fp.get("/page", {"Accept": "text/html"})
    html = body.decode()
    assert status == 200
    assert html.count("/first-party/proxy?url=") == 2
    assert "http://other.example/i.png" in html
    src = html.split('<script src="')[1].split('"')[0].replace("&amp;", "&")
    status, _, js = fp.get(src)
    assert status == 200 and js.startswith(b"console.log")


def test_publisher_page_signs_urls_in_noscript_and_inline_scripts(fp: Env) -> None:
    status, _, body = fp.get("/page-scripts", {"Accept": "text/html"})
    html = body.decode()
    assert status == 200
    tp = f"cdn.fp.test:{fp.tp_port}"
    # the whole literal in a script is signed; the concatenation and the other host are kept
    js_src = html.split('s.src="')[1].split('"')[0]
    assert js_src.startswith("/first-party/proxy?url=") and "&amp;" not in js_src
    assert f'var base="http://{tp}/" + "a.js"' in html and 'var o="http://other.example/o.js"' in html
    # the JSON-escaped spelling is signed and stays escaped
    cfg = json.loads(html.split('id="cfg">')[1].split("</script>")[0])
    assert cfg["tag"].startswith("/first-party/proxy?url=")
    assert '"tag":"\\/first-party\\/proxy?url=' in html
    # <noscript> markup: the image is signed (attribute-escaped), the other host is not
    noscript = html.split("<noscript>")[1].split("</noscript>")[0]
    assert '<img src="/first-party/proxy?url=' in noscript and "http://other.example/f" in noscript
    img = noscript.split('<img src="')[1].split('"')[0].replace("&amp;", "&")
    # every signed URL relays the third party's bytes
    for href in (js_src, cfg["tag"], img):
        status, _, got = fp.get(href)
        assert status == 200 and got, href
    status, _, js = fp.get(js_src)
    assert js.startswith(b"console.log") and "x%3D1%26y%3D2" in js_src


# -- identity --------------------------------------------------------------------------------------


def _id_prefix(ip: str) -> str:
    return hmac.new(SECRET.encode(), ip.encode(), hashlib.sha256).hexdigest()


def _nav(**extra: str) -> dict[str, str]:
    return {"Sec-Fetch-Dest": "document", "Accept": "text/html", **extra}


def test_identity_minted_for_navigation_in_non_regulated_country(fp: Env) -> None:
    status, headers, _ = fp.get("/page", _nav(**{"X-Geo-Country": "BR", "X-Sg-Id": "forged"}))
    assert status == 200
    cookie = headers["set-cookie"]
    value = cookie.split(";")[0].split("=", 1)[1]
    assert value.startswith(_id_prefix("127.0.0.1") + ".") and len(value) == 71
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "path", "max-age"} <= attrs
    assert "Max-Age=2592000" in cookie
    assert headers["cache-control"].startswith("private")
    assert "public" not in headers["cache-control"]
    assert origin_header(fp, "x-sg-id") == value


@pytest.mark.parametrize(
    "extra",
    [
        {"X-Geo-Country": "DE"},  # GDPR without a TC string
        {"X-Geo-Country": "DE", "Cookie": f"euconsent-v2={tc_string({2, 3})}"},  # no Purpose 1
        {},  # no geo header: Unknown
        {"X-Geo-Country": "US", "X-Geo-Region": "CA", "Sec-GPC": "1"},
        {"X-Geo-Country": "US", "X-Geo-Region": "CA"},  # privacy state, no signals
        {"X-Geo-Country": "DE", "Cookie": "euconsent-v2=%%%garbage; __gpp=~~~; us_privacy=zzz"},  # malformed
    ],
)
def test_no_identity_without_consent(fp: Env, extra: dict[str, str]) -> None:
    status, headers, _ = fp.get("/page", _nav(**extra, **{"X-Sg-Id": "forged"}))
    assert status == 200
    assert headers.get("set-cookie") is None
    assert origin_header(fp, "x-sg-id") is None


def test_identity_with_tcf_purpose_one_and_not_for_subresources(fp: Env) -> None:
    status, headers, _ = fp.get("/page", _nav(**{"X-Geo-Country": "FR", "Cookie": f"euconsent-v2={tc_string({1})}"}))
    assert status == 200 and headers["set-cookie"].startswith("sg_id=")
    status, headers, _ = fp.get("/page", {"Sec-Fetch-Dest": "image", "X-Geo-Country": "BR"})
    assert status == 200 and headers.get("set-cookie") is None


def test_returning_visitor_and_withdrawal(fp: Env) -> None:
    existing = _id_prefix("127.0.0.1") + ".AbC123"
    status, headers, _ = fp.get("/page", _nav(**{"X-Geo-Country": "BR", "Cookie": f"sg_id={existing}"}))
    assert status == 200 and headers.get("set-cookie") is None
    assert origin_header(fp, "x-sg-id") == existing
    status, headers, _ = fp.get(
        "/page", _nav(**{"X-Geo-Country": "DE", "Cookie": f"sg_id={existing}; euconsent-v2={tc_string({2})}"})
    )
    assert status == 200 and "Max-Age=0" in headers["set-cookie"] and headers["set-cookie"].startswith("sg_id=;")
    status, headers, _ = fp.get("/page", _nav(**{"X-Geo-Country": "BR", "Cookie": "sg_id=not-a-valid-id"}))
    minted = headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert minted != "not-a-valid-id" and origin_header(fp, "x-sg-id") == minted


def test_id_appended_to_click_and_proxy_only_with_consent_now(fp: Env) -> None:
    existing = _id_prefix("127.0.0.1") + ".Zz9Yy8"
    click = signed(tp_url(fp, "/landing?c=1"), kind="click")
    _, headers, _ = fp.get(click, {"Cookie": f"sg_id={existing}", "X-Geo-Country": "BR"})
    assert dict(parse_qsl(urlsplit(headers["location"]).query)) == {"c": "1", "sg_id": existing}
    _, headers, _ = fp.get(
        click, {"Cookie": f"sg_id={existing}", "X-Geo-Country": "US", "X-Geo-Region": "CA", "Sec-GPC": "1"}
    )
    assert headers["location"] == tp_url(fp, "/landing?c=1")
    _, headers, _ = fp.get(click, {"X-Sg-Id": existing, "X-Geo-Country": "BR"})  # never from a header
    assert headers["location"] == tp_url(fp, "/landing?c=1")
    echo = fp.sign(tp_url(fp, "/echo"))
    _, headers, body = fp.get(echo, {"Cookie": f"sg_id={existing}", "X-Geo-Country": "BR"})
    assert json.loads(body)["query"] == f"sg_id={existing}" and headers["cache-control"].startswith("private")
    _, _, body = fp.get(echo, {"Cookie": f"sg_id={existing}", "X-Geo-Country": "DE"})
    assert json.loads(body)["query"] == ""


def test_set_cookie_is_in_the_head_sent_at_the_origins_first_byte(fp: Env) -> None:
    fp.origin.release.clear()
    fp.origin.first_chunk_sent.clear()
    with socket.create_connection(("127.0.0.1", fp.proxy.port), timeout=5) as s:
        s.sendall(
            b"GET /hold HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nSec-Fetch-Dest: document\r\nX-Geo-Country: BR\r\n\r\n"
            % fp.proxy.port
        )
        data = b""
        while b"<body>" not in data:  # the head and the origin's first body bytes
            data += s.recv(65536)
        head, _, _ = data.partition(b"\r\n\r\n")
        assert not fp.origin.release.is_set()  # the origin still holds the rest of the page
        assert b"\r\nset-cookie: sg_id=" in head.lower()
        assert b"cache-control: private" in head.lower()
        fp.origin.release.set()
        while not data.endswith(b"0\r\n\r\n"):
            data += s.recv(65536)


@pytest.mark.parametrize(
    ("keys", "secret", "problem"),
    [
        ("changeme-changeme-changeme-changeme", SECRET, "SLUICEGATE_FIRST_PARTY_KEYS: key #1 looks like a placeholder"),
        ("short-key", SECRET, "shorter than 32 bytes"),
        (K1, "your-identity-secret-goes-here-0123456789", "SLUICEGATE_IDENTITY_SECRET: key #1 looks like a"),
        (K1, "", "[identity] needs a secret"),
    ],
)
def test_unfit_secrets_refuse_start_up(tmp_path: Path, keys: str, secret: str, problem: str) -> None:
    from tests.integration.firstparty.conftest import CONFIG
    from tests.support.servers import ProxyProcess

    cfg = CONFIG.format(origin_port=9, allow="[]")
    env = {"SLUICEGATE_FIRST_PARTY_KEYS": keys, "SLUICEGATE_IDENTITY_SECRET": secret}
    proxy = ProxyProcess(tmp_path, cfg, env=env)
    with pytest.raises(RuntimeError):
        proxy.start(timeout=15)
    proxy.stop()
    log = proxy.log()
    assert problem in log, log
    for value in (keys, secret):
        if value:
            assert value not in log  # a secret never appears in an error


def test_answers_are_counted(fp: Env) -> None:
    fp.get("/first-party/proxy?url=x")
    with urllib.request.urlopen(f"{fp.proxy.admin_url}/metrics", timeout=5) as r:  # the admin listener
        body = r.read()
    assert b'sluicegate_first_party_responses_total{endpoint="proxy",status="400"}' in body


def test_head_and_methods(fp: Env) -> None:
    href = fp.sign(tp_url(fp, "/a.js"))
    conn = http.client.HTTPConnection("127.0.0.1", fp.proxy.port, timeout=10)
    try:
        conn.request("HEAD", href)
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"" and r.headers.get("set-cookie") is None
        conn.request("POST", href, body=b"x")
        r = conn.getresponse()
        assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
        r.read()
    finally:
        conn.close()


def test_identity_uses_the_client_address_the_trusted_proxy_logic_settled_on(fp: Env) -> None:
    """The ID's HMAC is over the address from the trusted-proxy logic: the forwarded client behind a
    trusted peer (IPv6 by its /64), never a forwarding header from an untrusted peer."""
    for forwarded, hashed in (("198.51.100.7", "198.51.100.7"),
                              ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "20010db800010002")):
        _, headers, _ = fp.get("/page", _nav(**{"X-Geo-Country": "BR", "X-Forwarded-For": forwarded}))
        value = headers["set-cookie"].split(";")[0].split("=", 1)[1]
        assert value.startswith(_id_prefix(hashed) + "."), forwarded
    # from 127.0.0.2 (not in trusted_proxies): neither its X-Forwarded-For nor its geo header is believed,
    # so the jurisdiction is Unknown and no ID is minted
    with socket.create_connection(("127.0.0.1", fp.proxy.port), timeout=5, source_address=("127.0.0.2", 0)) as s:
        s.sendall(b"GET /page HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nSec-Fetch-Dest: document\r\nX-Geo-Country: BR\r\n"
                  b"X-Forwarded-For: 198.51.100.7\r\nConnection: close\r\n\r\n" % fp.proxy.port)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 200") and b"set-cookie" not in head


EMPTY_ALLOWLIST = """
[server]
host = "127.0.0.1"
port = {port}

[publisher]
origin_url = "http://127.0.0.1:ORIGIN_PORT"
public_hosts = ["127.0.0.1:{port}"]

[first_party]
enabled = true
allowed_domains = []
allow_private_addresses = ["127.0.0.1/32"]
resolve = { "cdn.fp.test" = "127.0.0.1" }
"""


def test_an_empty_allowlist_turns_the_endpoints_off(tmp_path: Path, fp: Env) -> None:
    """``enabled = true`` without ``allowed_domains``: 404 for sign, proxy and click, even with a URL
    signed by the configured key; the third party is never contacted (never an open proxy)."""
    origin = ThreadedApp(origin_app(Seen(), fp.tp_port)).start()
    cfg = EMPTY_ALLOWLIST.replace("ORIGIN_PORT", str(origin.port))
    proxy = ProxyProcess(tmp_path, cfg, env={"SLUICEGATE_FIRST_PARTY_KEYS": K1}).start()
    try:
        before = len(fp.tp.requests)
        for path in ("/first-party/sign?url=" + quote(tp_url(fp, "/a.js"), safe=""), signed(tp_url(fp, "/a.js")),
                     signed(tp_url(fp, "/landing"), kind="click")):
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            conn.close()
            assert r.status == 404 and b"off" in body, (path, r.status, body)
        assert len(fp.tp.requests) == before
    finally:
        proxy.stop()
        origin.stop()


def test_publisher_css_signs_rewrite_domains(fp: Env) -> None:
    """The publisher's own CSS file gets what its inline <style> gets: url()/@import on rewrite_domains become
    signed proxy URLs (the origin writes it in pieces cut inside them); other hosts, relative and data: URLs
    stay as written; the signed URLs relay the third party."""
    status, headers, body = fp.get("/site.css")
    css = body.decode()
    tp = f"cdn.fp.test:{fp.tp_port}"
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert tp not in css
    imported = css.split('@import "')[1].split('"')[0]
    bg = css.split(".a{background:url(")[1].split(")")[0].strip("\"'")  # quoted when signed
    scheme_relative = css.split(".b{background:url('")[1].split("'")[0]
    for href, target in ((imported, f"http://{tp}/style.css"), (bg, f"http://{tp}/bg.png"),
                         (scheme_relative, f"https://{tp}/b.png")):
        assert href.startswith("/first-party/proxy?url="), css
        assert dict(parse_qsl(urlsplit(href).query))["url"] == target
    assert ".c{background:url(http://other.example/o.png)}" in css
    assert ".d{background:url(rel/d.png)}" in css and ".e{background:url(data:image/png;base64,AAAA)}" in css
    # the imported sheet comes through /first-party/proxy, its own allowed url() signed in turn
    status, headers, got = fp.get(imported)
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert got.count(b"/first-party/proxy?url=") == 1 and b"not-allowed.example/x.png" in got
    assert fp.get(imported.replace("style.css", "other.css"))[0] == 403  # the signature covers the target
