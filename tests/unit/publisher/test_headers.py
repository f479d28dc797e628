"""Header transforms: hop-by-hop, forwarding trust, Accept-Encoding, host checks, URL headers."""

import pytest

from sluicegate.config.origin import Origin
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.publisher import headers as hdr

ORIGIN = Origin.parse("https://origin.example.com")
RW = OriginMatcher(ORIGIN).for_request("https", "www.pub.example")


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, None),
        ("gzip, deflate, br, zstd", "gzip, deflate, br, zstd"),
        ("br;q=1, *;q=0.1", "gzip, deflate, br, zstd"),
        ("compress", "identity"),
        ("identity", "identity"),
        ("*;q=0", "identity"),
        ("gzip;q=0, br", "br"),
        ("GZIP", "gzip"),
        ("br, gzip;q=0.5", "gzip, br"),
    ],
)
def test_accept_encoding_narrowing(value: str | None, expected: str | None) -> None:
    assert hdr.narrow_accept_encoding(value) == expected


def facts(trusted: bool) -> hdr.ClientFacts:
    return hdr.ClientFacts("203.0.113.9", "https", "www.pub.example", trusted)


def test_untrusted_forwarding_headers_dropped() -> None:
    src = [
        ("Host", "www.pub.example"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("Forwarded", "for=6.6.6.6"),
        ("X-Forwarded-Host", "evil"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Forwarded-Proto", "http"),
        ("Cookie", "a=1"),
    ]
    out = dict((k.lower(), v) for k, v in hdr.upstream_request_headers(src, facts(False), ORIGIN, "", "rid"))
    assert out["x-forwarded-for"] == "203.0.113.9"
    assert out["x-forwarded-host"] == "www.pub.example"
    assert out["x-forwarded-proto"] == "https"
    assert "forwarded" not in out and "x-real-ip" not in out
    assert out["host"] == "origin.example.com"
    assert out["via"] == "1.1 sluicegate"
    assert out["cookie"] == "a=1"
    assert out["x-request-id"] == "rid"


def test_trusted_chain_extended() -> None:
    src = [("X-Forwarded-For", "198.51.100.1"), ("Via", "1.1 cdn")]
    out = dict(
        (k.lower(), v) for k, v in hdr.upstream_request_headers(src, facts(True), ORIGIN, "origin.internal", "r")
    )
    assert out["x-forwarded-for"] == "198.51.100.1, 203.0.113.9"
    assert out["via"] == "1.1 cdn, 1.1 sluicegate"
    assert out["host"] == "origin.internal"


def test_trusted_proxies_and_scheme() -> None:
    trusted = hdr.TrustedProxies(["10.0.0.0/8", "::1/128"])
    assert "10.1.2.3" in trusted and "::1" in trusted and "11.0.0.1" not in trusted and None not in trusted
    h = [("X-Forwarded-Proto", "https")]
    assert hdr.client_facts("10.0.0.5", "http", "h", h, trusted).scheme == "https"
    assert hdr.client_facts("8.8.8.8", "http", "h", h, trusted).scheme == "http"


@pytest.mark.parametrize(
    "host,ok",
    [
        ("www.pub.example", True),
        ("WWW.PUB.EXAMPLE", True),
        ("www.pub.example:443", True),
        ("www.pub.example:8443", False),
        ("evil.example", False),
        ("127.0.0.1:8080", True),
        ("127.0.0.1", False),
    ],
)
def test_host_allowed(host: str, ok: bool) -> None:
    assert hdr.host_allowed(host, "https", ["www.pub.example", "127.0.0.1:8080"]) is ok


@pytest.mark.parametrize(
    "host,ok",
    [
        ("a.example", True),
        ("a.example:80", True),
        ("[::1]:8080", True),
        ("a b", False),
        ("a/b", False),
        ("a@b", False),
        ("", False),
        ("a:99999x", False),
    ],
)
def test_host_syntax(host: str, ok: bool) -> None:
    assert hdr.valid_host(host) is ok


def test_response_url_headers_and_cookie_domain() -> None:
    src = [
        ("Location", "https://origin.example.com/next"),
        ("Content-Location", "//origin.example.com/c"),
        ("Refresh", "0; url=https://origin.example.com/r"),
        ("Link", "<https://origin.example.com/s.css>; rel=preload"),
        ("Set-Cookie", "a=1; Domain=.origin.example.com; Path=/"),
        ("Set-Cookie", "b=2; Domain=other.com"),
        ("Location-Other", "https://origin.example.com/"),
        ("Transfer-Encoding", "chunked"),
    ]
    out = hdr.downstream_response_headers(src, RW, ORIGIN, "rid")
    assert out == [
        ("Location", "https://www.pub.example/next"),
        ("Content-Location", "//www.pub.example/c"),
        ("Refresh", "0; url=https://www.pub.example/r"),
        ("Link", "<https://www.pub.example/s.css>; rel=preload"),
        ("Set-Cookie", "a=1; Domain=www.pub.example; Path=/"),
        ("Set-Cookie", "b=2; Domain=other.com"),
        ("Location-Other", "https://www.pub.example/"),
        ("x-request-id", "rid"),
    ]


def test_cookie_domain_dropped_for_ip_public_host() -> None:
    rw = OriginMatcher(ORIGIN).for_request("http", "127.0.0.1:8080")
    out = hdr.downstream_response_headers([("Set-Cookie", "a=1; domain=origin.example.com; Path=/")], rw, ORIGIN, "r")
    assert out[0] == ("Set-Cookie", "a=1; Path=/")


def test_not_modified_keeps_the_weak_etag_the_client_holds() -> None:
    h = [("ETag", '"abc"'), ("Cache-Control", "max-age=0")]
    assert hdr.for_not_modified(h, 'W/"abc"') == [("ETag", 'W/"abc"'), ("Cache-Control", "max-age=0")]
    assert hdr.for_not_modified(h, '"abc"') == h  # the client holds the strong one: a pass-through body
    assert hdr.for_not_modified(h, 'W/"other", "abc"') == h
    assert hdr.for_not_modified([("ETag", 'W/"abc"')], 'W/"abc"') == [("ETag", 'W/"abc"')]
