"""The response header rule: every value mapped, a short exception list, Set-Cookie and CSP rules."""

from __future__ import annotations

import pytest

from sluicegate.config.origin import Origin
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.publisher import headers as hdr
from sluicegate.publisher import response_headers as rh

ORIGIN = Origin.parse("https://www.origin-site.com")
NAMES = rh.origin_names(ORIGIN)
RW = OriginMatcher(ORIGIN).for_request("https", "www.pub.example")


def mapped(name: str, value: str, public_hosts: tuple[str, ...] = ("www.pub.example",)) -> str:
    out = hdr.downstream_response_headers([(name, value)], RW, ORIGIN, "rid", public_hosts=public_hosts)
    return out[0][1]


@pytest.mark.parametrize(
    "name", ["X-Pingback", "X-Canonical", "Location", "Refresh", "Link", "Access-Control-Allow-Origin", "X-Anything"]
)
def test_every_header_is_mapped(name: str) -> None:
    assert mapped(name, "https://www.origin-site.com/xmlrpc.php") == "https://www.pub.example/xmlrpc.php"


@pytest.mark.parametrize("name", sorted(rh.NOT_MAPPED - {"x-request-id"}))
def test_exception_list_is_untouched(name: str) -> None:
    value = '"https://www.origin-site.com/"'
    assert mapped(name, value) == value


def test_link_rel_uri_of_another_site_stays() -> None:
    v = (
        '<https://www.origin-site.com/wp-json/>; rel="https://api.w.org/", '
        "<https://www.origin-site.com/?p=2>; rel=shortlink"
    )
    assert mapped("Link", v) == (
        '<https://www.pub.example/wp-json/>; rel="https://api.w.org/", <https://www.pub.example/?p=2>; rel=shortlink'
    )


def test_timing_allow_origin_list() -> None:
    v = "https://www.origin-site.com, https://cdn.example.net"
    assert mapped("Timing-Allow-Origin", v) == "https://www.pub.example, https://cdn.example.net"
    assert mapped("Access-Control-Allow-Origin", "*") == "*"


@pytest.mark.parametrize(
    "cookie,public_hosts,expected",
    [
        # exactly the origin host -> the public host (same scope: that host and its subdomains)
        ("a=1; Domain=www.origin-site.com; Path=/", ("www.pub.example",), "a=1; Domain=www.pub.example; Path=/"),
        ("a=1; domain=.WWW.origin-site.com", ("www.pub.example",), "a=1; Domain=www.pub.example"),
        # a parent of the origin host (site-wide): the domain the public hosts share
        ("a=1; Domain=.origin-site.com; Secure", ("www.pub.example", "pub.example"), "a=1; Domain=pub.example; Secure"),
        ("a=1; Domain=origin-site.com", ("www.pub.example", "shop.pub.example"), "a=1; Domain=pub.example"),
        # one public host: the cookie is scoped to it
        ("a=1; Domain=origin-site.com", ("www.pub.example",), "a=1; Domain=www.pub.example"),
        # two public hosts under a public-suffix-shaped parent: never Domain=co.uk
        ("a=1; Domain=origin-site.com", ("www.pub.example", "a.co.uk"), "a=1; Domain=www.pub.example"),
        # not ours: unchanged
        ("a=1; Domain=other.com; Path=/", ("www.pub.example",), "a=1; Domain=other.com; Path=/"),
        ("a=1; Domain=site.com", ("www.pub.example",), "a=1; Domain=site.com"),
        # cookie values carrying origin URLs are mapped (and mapped back on the way in)
        (
            "next=https://www.origin-site.com/cart; Path=/",
            ("www.pub.example",),
            "next=https://www.pub.example/cart; Path=/",
        ),
    ],
)
def test_set_cookie(cookie: str, public_hosts: tuple[str, ...], expected: str) -> None:
    assert mapped("Set-Cookie", cookie, public_hosts) == expected


def test_set_cookie_domain_dropped_for_ip_public_host() -> None:
    rw = OriginMatcher(ORIGIN).for_request("http", "127.0.0.1:8080")
    out = hdr.downstream_response_headers([("Set-Cookie", "a=1; Domain=origin-site.com; Path=/")], rw, ORIGIN, "r")
    assert out[0] == ("Set-Cookie", "a=1; Path=/")


def test_site_domain_rules() -> None:
    assert rh.site_domain("www.pub.co.uk", ["www.pub.co.uk", "pub.co.uk"]) == "pub.co.uk"
    assert rh.site_domain("a.pub.com", ["a.pub.com", "b.pub.com", "127.0.0.1:8080", "*"]) == "pub.com"
    assert rh.site_domain("a.pub.com", ["a.pub.com", "unrelated.org"]) == "a.pub.com"


def test_csp_sources() -> None:
    v = (
        "default-src 'self' https://www.origin-site.com www.origin-site.com:443 *.origin-site.com; "
        "img-src data: https://cdn.example.net //www.origin-site.com; report-uri https://www.origin-site.com/csp"
    )
    out = mapped("Content-Security-Policy", v)
    assert out == (
        "default-src 'self' https://www.pub.example www.pub.example *.origin-site.com; "
        "img-src data: https://cdn.example.net //www.pub.example; report-uri https://www.pub.example/csp"
    )
    # a wildcard alone over the origin: kept (subdomains are not mapped) and the public host added
    out = mapped("Content-Security-Policy-Report-Only", "script-src *.origin-site.com 'nonce-abc'")
    assert out == "script-src *.origin-site.com 'nonce-abc' www.pub.example"
    assert mapped("Content-Security-Policy", "script-src *.other.com") == "script-src *.other.com"


def test_origin_host_header_is_an_origin_name() -> None:
    names = rh.origin_names(Origin.parse("http://10.0.0.5:8080"), "WWW.Real-Site.com:80")
    assert names == frozenset({"10.0.0.5", "www.real-site.com"})
    assert rh.cookie_domain("real-site.com", names, "pub.example", ["pub.example"]) == "pub.example"


def test_set_cookie_domain_dropped_for_single_label_public_host() -> None:
    rw = OriginMatcher(ORIGIN).for_request("http", "localhost:8080")
    out = hdr.downstream_response_headers([("Set-Cookie", "a=1; Domain=www.origin-site.com")], rw, ORIGIN, "r")
    assert out[0] == ("Set-Cookie", "a=1")


def test_aliases_are_origin_names_for_cookies_csp_and_urls() -> None:
    """``[publisher] origin_aliases``: a cookie scoped to an alias's domain, a CSP source naming it and a
    URL on it are all treated as the origin's own."""
    aliases = ["origin-internal.lan:8443", "cdn.origin-site.net"]
    assert rh.origin_names(ORIGIN, "", aliases) == frozenset(
        {"www.origin-site.com", "origin-internal.lan", "cdn.origin-site.net"}
    )
    rw = OriginMatcher(ORIGIN, aliases).for_request("https", "www.pub.example")
    out = hdr.downstream_response_headers(
        [
            ("Set-Cookie", "a=1; Domain=cdn.origin-site.net; Path=/"),
            ("Content-Security-Policy", "img-src https://cdn.origin-site.net"),
            ("X-Pingback", "https://origin-internal.lan:8443/xmlrpc.php"),
        ],
        rw,
        ORIGIN,
        "rid",
        public_hosts=("www.pub.example",),
        aliases=aliases,
    )
    assert out[0] == ("Set-Cookie", "a=1; Domain=www.pub.example; Path=/")
    assert out[1] == ("Content-Security-Policy", "img-src https://www.pub.example")
    assert out[2] == ("X-Pingback", "https://www.pub.example/xmlrpc.php")
