"""Sans-IO rules: canonical targets, signatures, the host allowlist, the address guard, the decision
table, the ID, and the streaming CSS/HTML rewriters (identical for every chunking)."""

from __future__ import annotations

import ipaddress
import random
from urllib.parse import parse_qsl, quote

import pytest

from sluicegate.config.domains import DomainList
from sluicegate.config.secrets import SecretError
from sluicegate.firstparty.guard import AddressGuard
from sluicegate.firstparty.markup import CssUrlStream, UrlMinter, page_stage, proxied_html
from sluicegate.firstparty.signing import BadUrl, Signer, canonical_url, load_keys
from sluicegate.identity.consent import UsPrivacy
from sluicegate.identity.decision import Jurisdiction, Signals, decide, jurisdiction
from sluicegate.identity.edge import normalise_ip, valid_id

K1 = b"k1-0123456789abcdefghijklmnopqrstuvwxyz"
K2 = b"k2-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210"
NOW = 1_800_000_000


def signer(*keys: bytes) -> Signer:
    return Signer(list(keys or (K1,)), "/first-party", 60, clock=lambda: NOW)


def query_of(href: str) -> str:
    return href.split("?", 1)[1]


# -- canonical form --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canon"),
    [
        ("HTTPS://CDN.Example.COM:443/a/b?x=1#frag", "https://cdn.example.com/a/b?x=1"),
        ("http://cdn.example.com:80", "http://cdn.example.com/"),
        ("http://cdn.example.com:8080/p", "http://cdn.example.com:8080/p"),
        ("https://cdn.example.com/a b/%7e?q=a b&z&y=%2c", "https://cdn.example.com/a%20b/%7E?q=a+b&z&y=%2C"),
        ("//cdn.example.com/x", "https://cdn.example.com/x"),
        ("https://[2001:DB8::1]:8443/", "https://[2001:db8::1]:8443/"),
        ("https://cdn.example.com/?b=2&a=1", "https://cdn.example.com/?b=2&a=1"),  # order kept
    ],
)
def test_canonical_form(raw: str, canon: str) -> None:
    assert canonical_url(raw).url == canon
    assert canonical_url(canon).url == canon  # a fixed point


@pytest.mark.parametrize(
    "raw",
    ["javascript:alert(1)", "data:text/html,x", "ftp://cdn.example.com/", "/relative", "https://u:p@cdn.example.com/",
     "https:///nohost", "https://cdn.example.com/\nx", "file:///etc/passwd", "https://cdn.example.com:0/"],
)
def test_non_http_targets_are_malformed(raw: str) -> None:
    with pytest.raises(BadUrl) as e:
        canonical_url(raw)
    assert e.value.status == 400


# -- signatures ------------------------------------------------------------------------------------


def test_round_trip_and_each_part_tampered() -> None:
    s = signer()
    href = s.mint("proxy", canonical_url("https://cdn.example.com/a.js?v=1"), now=NOW)
    q = query_of(href)
    assert s.verify("proxy", q, now=NOW).url == "https://cdn.example.com/a.js?v=1"
    params = dict(parse_qsl(q))
    tampered = {
        "url host": {**params, "url": "https://evil.example.com/a.js?v=1"},
        "url path": {**params, "url": "https://cdn.example.com/b.js?v=1"},
        "url query": {**params, "url": "https://cdn.example.com/a.js?v=2"},
        "url extra param": {**params, "url": "https://cdn.example.com/a.js?v=1&x=1"},
        "exp": {**params, "exp": str(int(params["exp"]) + 1)},
        "sig": {**params, "sig": ("A" if params["sig"][0] != "A" else "B") + params["sig"][1:]},
    }
    for what, p in tampered.items():
        qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in p.items())
        with pytest.raises(BadUrl) as e:
            s.verify("proxy", qs, now=NOW)
        assert e.value.status == 403, what
    with pytest.raises(BadUrl) as e:  # a proxy token is not a click token
        s.verify("click", q, now=NOW)
    assert e.value.status == 403


def test_equivalent_encodings_verify() -> None:
    s = signer()
    href = s.mint("proxy", canonical_url("https://cdn.example.com/a?q=a b"), now=NOW)
    q = query_of(href).replace("%2B", "%2520")  # '+' written as '%20' inside the target: same canonical form
    assert s.verify("proxy", q, now=NOW).url == "https://cdn.example.com/a?q=a+b"


def test_expired_is_403_with_reason() -> None:
    s = signer()
    q = query_of(s.mint("proxy", canonical_url("https://cdn.example.com/"), now=NOW))
    with pytest.raises(BadUrl) as e:
        s.verify("proxy", q, now=NOW + 61)
    assert e.value.status == 403 and "expired" in e.value.reason


def test_wrong_key_and_rotation() -> None:
    old = signer(K1)
    q = query_of(old.mint("proxy", canonical_url("https://cdn.example.com/"), now=NOW))
    with pytest.raises(BadUrl) as e:
        signer(K2).verify("proxy", q, now=NOW)
    assert e.value.status == 403
    rotated = signer(K2, K1)  # new key signs, the old one still verifies
    assert rotated.verify("proxy", q, now=NOW).host == "cdn.example.com"
    q2 = query_of(rotated.mint("proxy", canonical_url("https://cdn.example.com/"), now=NOW))
    with pytest.raises(BadUrl):
        old.verify("proxy", q2, now=NOW)  # old deployments do not accept the new key


@pytest.mark.parametrize(
    "q",
    ["", "url=https%3A%2F%2Fa.example%2F&exp=1", "url=x&exp=abc&sig=" + "A" * 43, "url=x&exp=1&sig=short",
     "url=a&url=b&exp=1&sig=" + "A" * 43, "url=https%3A%2F%2Fa.example%2F&exp=1&sig=" + "A" * 43 + "&extra=1",
     "url=javascript%3Aalert(1)&exp=9999999999&sig=" + "A" * 43],
)
def test_malformed_is_400(q: str) -> None:
    with pytest.raises(BadUrl) as e:
        signer().verify("proxy", q, now=NOW)
    assert e.value.status == 400


def test_keys_are_checked() -> None:
    with pytest.raises(SecretError):
        load_keys("", {"SLUICEGATE_FIRST_PARTY_KEYS": "short"})
    placeholders = (
        "changeme", "x" * 40, "<your-signing-key-of-32-bytes-or-more>", "example-key-0123456789-abcdefghijkl"
    )
    for placeholder in placeholders:
        with pytest.raises(SecretError) as e:
            load_keys("", {"SLUICEGATE_FIRST_PARTY_KEYS": placeholder})
        assert placeholder not in str(e.value)  # never echo a secret
    with pytest.raises(SecretError):
        load_keys("", {})
    assert load_keys("", {"SLUICEGATE_FIRST_PARTY_KEYS": f"{K1.decode()}, {K2.decode()}"}) == [K1, K2]


# -- allowlist and address guard -------------------------------------------------------------------


def test_domain_patterns() -> None:
    d = DomainList(["cdn.example.net", "*.example.com"])
    assert d.matches("cdn.example.net") and d.matches("CDN.Example.NET.")
    assert not d.matches("a.cdn.example.net")
    assert d.matches("example.com") and d.matches("a.b.example.com")
    assert not d.matches("evil-example.com") and not d.matches("example.com.evil.org")
    assert not DomainList([]).matches("example.com")


@pytest.mark.parametrize(
    "addr",
    ["127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "169.254.1.1",
     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
     "fd00:ec2::254", "224.0.0.1", "100.100.100.200"],
)
def test_special_addresses_are_refused(addr: str) -> None:
    assert AddressGuard([]).check(ipaddress.ip_address(addr)) is not None


def test_public_and_allowlisted_addresses() -> None:
    g = AddressGuard(["127.0.0.1/32"])
    assert g.check(ipaddress.ip_address("93.184.216.34")) is None
    assert g.check(ipaddress.ip_address("2606:4700::1111")) is None
    assert g.check(ipaddress.ip_address("127.0.0.1")) is None
    assert g.check(ipaddress.ip_address("127.0.0.2")) is not None
    assert g.check(ipaddress.ip_address("169.254.169.254")) is not None


# -- decision table --------------------------------------------------------------------------------


class _Tc:
    def __init__(self, *purposes: int) -> None:
        self.p = set(purposes)

    def purpose(self, n: int) -> bool:
        return n in self.p


def _sig(**kw: object) -> Signals:
    return Signals(**kw)  # type: ignore[arg-type]


def test_decision_table() -> None:
    G, U, N, X = Jurisdiction.GDPR, Jurisdiction.US_STATE, Jurisdiction.NON_REGULATED, Jurisdiction.UNKNOWN
    no = _sig()
    yes_tcf = _sig(tcf=_Tc(1, 2))
    no_tcf = _sig(tcf=_Tc(2))
    usp_out = _sig(usp=UsPrivacy(1, "Y", "Y", "N"))
    usp_in = _sig(usp=UsPrivacy(1, "Y", "N", "N"))
    cases = [
        (G, no, False, False), (G, yes_tcf, True, False), (G, no_tcf, False, True), (G, usp_in, False, False),
        (U, no, False, False), (U, _sig(gpc=True), False, True), (U, usp_out, False, True), (U, usp_in, True, False),
        (U, yes_tcf, True, False), (U, no_tcf, False, True), (U, _sig(tcf=_Tc(1), gpc=True), False, True),
        (N, no, True, False), (N, _sig(gpc=True), True, False),
        (X, no, False, False), (X, yes_tcf, False, False), (X, no_tcf, False, False),
    ]
    for j, s, allow, withdrawal in cases:
        d = decide(j, s)
        assert (d.allow, d.withdrawal) == (allow, withdrawal), (j, s)


def test_jurisdiction() -> None:
    gdpr, states = frozenset({"DE", "FR"}), frozenset({"CA"})
    assert jurisdiction("de", "", gdpr, states) is Jurisdiction.GDPR
    assert jurisdiction("US", "CA", gdpr, states) is Jurisdiction.US_STATE
    assert jurisdiction("US", "US-CA", gdpr, states) is Jurisdiction.US_STATE
    assert jurisdiction("US", "NY", gdpr, states) is Jurisdiction.NON_REGULATED
    assert jurisdiction("US", "", gdpr, states) is Jurisdiction.UNKNOWN
    assert jurisdiction("BR", "", gdpr, states) is Jurisdiction.NON_REGULATED
    assert jurisdiction("", "", gdpr, states) is Jurisdiction.UNKNOWN
    assert jurisdiction("XX", "", gdpr, states) is Jurisdiction.UNKNOWN


def test_ip_normalisation_and_id_shape() -> None:
    assert normalise_ip("203.0.113.9") == "203.0.113.9"
    assert normalise_ip("2001:db8:85a3:1:2:3:4:5") == "20010db885a30001"
    assert normalise_ip("2001:db8:85a3:1:ffff::") == normalise_ip("2001:db8:85a3:1::9")
    assert normalise_ip("::ffff:203.0.113.9") == "203.0.113.9"
    assert normalise_ip("nonsense") is None
    assert valid_id("a" * 64 + ".Ab3xY9")
    bads = ("A" * 64 + ".Ab3xY9", "a" * 63 + ".Ab3xY9", "a" * 64 + ".Ab3xY", "a" * 64 + ".Ab3x;9", "a" * 64 + "Ab3xY9")
    for bad in bads:
        assert not valid_id(bad)


# -- streaming rewriters ---------------------------------------------------------------------------


def _chunked(t: object, data: bytes, rnd: random.Random) -> bytes:
    out = []
    pos = 0
    while pos < len(data):
        n = rnd.randint(0, 40)
        out.append(t.feed(data[pos : pos + n]))  # type: ignore[attr-defined]
        pos += n
    out.append(t.finish())  # type: ignore[attr-defined]
    return b"".join(out)


def test_css_stream_same_for_every_chunking() -> None:
    s = signer()
    css = (
        b"@import 'https://cdn.example.com/base.css';\n.a{background:url(https://cdn.example.com/i.png)}"
        b".b{background:URL( \"//cdn.example.com/j.png\" )} .c{background:url(https://other.org/k.png)}"
        b".d{background:url(rel/l.png)} .e{background:url(data:image/png;base64,AAAA)}"
    )
    whole_m = UrlMinter(s, DomainList(["cdn.example.com"]), base="https://cdn.example.com/css/site.css")
    whole = whole_m.css(css)
    assert whole.count(b"/first-party/proxy?url=") == 4  # three absolute + the relative one on the same host
    assert b"https://other.org/k.png" in whole and b"data:image/png;base64,AAAA" in whole
    rnd = random.Random(5)
    for _ in range(200):
        assert _chunked(CssUrlStream(whole_m, 8192), css, rnd) == whole


def test_page_stage_rewrites_listed_attributes_only() -> None:
    s = signer()
    page = (
        b'<html><head><script src="https://cdn.example.com/a.js"></script>'
        b'<link rel="stylesheet" href="https://cdn.example.com/s.css">'
        b'<link rel="canonical" href="https://cdn.example.com/c">'
        b"<style>.x{background:url(https://cdn.example.com/bg.png)}</style></head><body>"
        b'<img src="https://cdn.example.com/i.png" '
        b'srcset="https://cdn.example.com/i1.png 1x, https://cdn.example.com/i2.png 2x">'
        b'<iframe src="https://cdn.example.com/f.html"></iframe><a href="https://cdn.example.com/click">x</a>'
        b'<img src="https://evil-example.com/i.png"><div style="background:url(\'https://cdn.example.com/d.png\')"></div>'
        b'<script src="javascript:alert(1)"></script></body></html>'
    )
    minter = UrlMinter(s, DomainList(["cdn.example.com"]))
    whole = page_stage(minter, max_tag_bytes=65536, max_text_bytes=1 << 20)
    out = whole.feed(page) + whole.finish()
    assert out.count(b"/first-party/proxy?url=") == 8
    assert b'href="https://cdn.example.com/c"' in out  # canonical link untouched
    assert b'href="https://cdn.example.com/click"' in out  # publisher pages: anchors untouched
    assert b"https://evil-example.com/i.png" in out and b"javascript:alert(1)" in out
    rnd = random.Random(9)
    for _ in range(50):
        assert _chunked(page_stage(minter, max_tag_bytes=65536, max_text_bytes=1 << 20), page, rnd) == out


def test_proxied_html_clicks_relative_and_base() -> None:
    s = signer()
    doc = (
        b'<base href="https://elsewhere.org/"><a href="/land?x=1">go</a><img src="pix.gif">'
        b'<a href="https://other.org/">o</a><a href="javascript:alert(1)">j</a>'
    )
    minter = UrlMinter(s, DomainList(["*.example.com"]), base="https://ads.example.com/c/creative.html")
    h = proxied_html(minter, max_tag_bytes=65536, max_text_bytes=1 << 20)
    out = (h.feed(doc) + h.finish()).decode()
    assert "<base" not in out
    click = s.verify("click", out.split('href="/first-party/click?')[1].split('"')[0].replace("&amp;", "&"))
    assert click.url == "https://ads.example.com/land?x=1"
    assert "/first-party/proxy?url=" + quote("https://ads.example.com/c/pix.gif", safe="") in out
    assert out.count("/first-party/click?url=") == 2  # landing pages anywhere: a click is a signed redirect
    assert "https%3A%2F%2Fother.org%2F" in out and 'href="javascript:alert(1)"' in out


def test_geo_headers_count_only_from_trusted_peers() -> None:
    from sluicegate.config.firstparty import IdentitySettings
    from sluicegate.identity.edge import EdgeIdentity

    ident = EdgeIdentity(IdentitySettings(enabled=True, geo_country_header="x-geo-country"), K1)
    headers = [("x-geo-country", "BR"), ("sec-fetch-dest", "document")]
    assert ident.jurisdiction(headers, trusted_peer=True) is Jurisdiction.NON_REGULATED
    assert ident.jurisdiction(headers, trusted_peer=False) is Jurisdiction.UNKNOWN
    edge = ident.begin(headers, "203.0.113.5", trusted_peer=False)
    assert edge is not None and edge.set_cookie is None and edge.edge_id is None
    edge = ident.begin(headers, "203.0.113.5", trusted_peer=True)
    assert edge is not None and edge.edge_id is not None and edge.set_cookie is not None
    assert ident.begin([("sec-fetch-dest", "image")], "203.0.113.5", trusted_peer=True) is None  # nothing to do


def test_config_shape() -> None:
    from pydantic import ValidationError

    from sluicegate.config.firstparty import FirstPartySettings, IdentitySettings

    fp = FirstPartySettings(allowed_domains=["*.Example.com", "cdn.net"], rewrite_domains=["a.example.com"],
                            url_ttl="5m")  # type: ignore[arg-type]
    assert fp.url_ttl == 300 and fp.allowed_domains == ["*.example.com", "cdn.net"]
    for bad in (
        {"allowed_domains": ["cdn.net"], "rewrite_domains": ["other.net"]},  # not covered
        {"allowed_domains": ["*.com"]},  # a wildcard over a whole TLD
        {"allowed_domains": ["http://cdn.net/"]},
        {"allow_private_addresses": ["10.0.0.0/33"]},
        {"url_ttl": "soon"},
        {"path_prefix": "/_sluicegate/fp"},
        {"resolve": {"cdn.net": "not-an-ip"}},
    ):
        with pytest.raises(ValidationError):
            FirstPartySettings(**bad)  # type: ignore[arg-type]
    assert IdentitySettings(max_age="30d").max_age == 30 * 86400  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        IdentitySettings(cookie_name="bad name")


def test_the_checked_address_is_the_one_connected_to() -> None:
    """A resolver whose second answer would be loopback (DNS rebinding): it is asked once per hop, and
    the connection goes to the first, checked answer."""
    import asyncio

    from sluicegate.firstparty.fetch import ThirdPartyClient
    from sluicegate.firstparty.guard import Refused, Resolver
    from sluicegate.upstream.errors import OriginConnectError

    class Rebinding(Resolver):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        async def resolve(self, host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
            self.calls += 1
            return [ipaddress.ip_address("192.0.2.10" if self.calls == 1 else "127.0.0.1")]

    async def run() -> None:
        resolver = Rebinding()
        client = ThirdPartyClient(
            DomainList(["cdn.example.com"]), AddressGuard(["192.0.2.0/24"]), resolver, connect_timeout=0.3
        )
        with pytest.raises((OriginConnectError, Refused)):
            await client.open("GET", canonical_url("http://cdn.example.com:9/x"), [])
        assert resolver.calls == 1
        assert [key[1] for key in client._pools.authorities()] == ["192.0.2.10"]
        await client.close()
        # the second answer (loopback) is refused by the guard, before any connection
        with pytest.raises(Refused) as e:
            await client.open("GET", canonical_url("http://cdn.example.com:9/x"), [])
        assert e.value.status == 403 and "loopback" in e.value.reason

    asyncio.run(run())


def test_srcset_candidates_with_commas_in_urls() -> None:
    m = UrlMinter(signer(), DomainList(["cdn.example.com"]))
    value = (
        " https://cdn.example.com/a.jpg?x=1,2 1x,https://other.org/b.jpg 2x, https://cdn.example.com/c.jpg,, /d.jpg 3x"
    )
    out = m.srcset(value)
    assert out is not None
    parts = out.split("/first-party/proxy?url=")
    assert len(parts) == 3
    assert "https%3A%2F%2Fcdn.example.com%2Fa.jpg%3Fx%3D1%252C2&" in parts[1]  # the comma stayed in the URL
    assert parts[1].endswith(" 1x,https://other.org/b.jpg 2x, ")
    assert parts[2].endswith(",, /d.jpg 3x")
    assert m.srcset("/only/relative.jpg 1x, data:image/png;base64,AAAA 2x") is None
