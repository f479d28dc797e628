"""The one origin mapping (#12 §1-2, #22 outbound): aliases, escaped and percent-encoded forms,
URL values read as the browser reads them, and what must stay untouched."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.model import PublisherSettings
from sluicegate.config.origin import Authority, Origin
from sluicegate.pipeline.hosts import OriginMatcher
from tests.unit.pipeline.streaming import feed_checked, split

ORIGIN = Origin.parse("https://origin.example")
ALIASES = ["www.origin.example", "origin-internal:8443", "cdn.origin.example"]
RW = OriginMatcher(ORIGIN, ALIASES).for_request("https", "pub.example:8080")
RW0 = OriginMatcher(ORIGIN).for_request("https", "pub.example:8080")


@pytest.mark.parametrize(
    "src,expected",
    [
        (b"https://www.origin.example/a", b"https://pub.example:8080/a"),
        (b"http://origin-internal:8443/a", b"https://pub.example:8080/a"),
        (b"//cdn.origin.example/i.png", b"//pub.example:8080/i.png"),
        (b"https://WWW.Origin.Example:443/a", b"https://pub.example:8080/a"),
        (b"see www.origin.example.", b"see pub.example:8080."),
        (b"https:\\/\\/www.origin.example\\/x", b"https:\\/\\/pub.example:8080\\/x"),
        # boundaries hold for aliases too
        (b"https://origin-internal:8444/a", b"https://origin-internal:8444/a"),
        (b"https://origin-internal/a", b"https://origin-internal/a"),
        (b"https://xwww.origin.example/", b"https://xwww.origin.example/"),
        (b"https://www.origin.example.evil/", b"https://www.origin.example.evil/"),
        (b"https://img.cdn.origin.example/", b"https://img.cdn.origin.example/"),
    ],
)
def test_aliases_map_like_the_origin(src: bytes, expected: bytes) -> None:
    assert RW.rewrite(src) == expected


def test_no_aliases_keeps_the_single_needle_path() -> None:
    m = OriginMatcher(ORIGIN)
    assert m.single and m.needles == (b"origin.example",)
    assert not OriginMatcher(ORIGIN, ALIASES).single
    assert RW0.rewrite(b"https://www.origin.example/") == b"https://www.origin.example/"


def test_origin_host_header_is_an_alias() -> None:
    s = PublisherSettings(origin_url="http://10.0.0.5:8000", origin_host_header="site.example",
                          origin_aliases=["www.site.example"])
    assert s.all_origin_aliases == ["www.site.example", "site.example"]
    rw = OriginMatcher(s.origin, s.all_origin_aliases).for_request("https", "pub.example")
    assert rw.rewrite(b"<a href='http://site.example/p'> http://10.0.0.5:8000/q") == (
        b"<a href='https://pub.example/p'> https://pub.example/q"
    )


@pytest.mark.parametrize("bad", ["", "a/b", "http://x/y", "user@host", "host:99999", "a b"])
def test_bad_alias_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        PublisherSettings(origin_aliases=[bad])
    with pytest.raises(ValueError):
        Authority.parse(bad)


@pytest.mark.parametrize(
    "src,expected",
    [
        # percent-encoded once, as a query value: same hex case, same characters encoded
        (b"/embed?url=http%3A%2F%2Forigin.example%2Fhello%2F",
         b"/embed?url=https%3A%2F%2Fpub.example%3A8080%2Fhello%2F"),
        (b"?u=https%3a%2f%2forigin.example%2fx", b"?u=https%3a%2f%2fpub.example%3a8080%2fx"),
        (b"?u=%2F%2Forigin.example%2Fx", b"?u=%2F%2Fpub.example%3A8080%2Fx"),
        (b"?redirect_to=HTTP%3A%2F%2FORIGIN.EXAMPLE%2Fwp-admin",
         b"?redirect_to=https%3A%2F%2Fpub.example%3A8080%2Fwp-admin"),
        (b'{"share":"https:\\/\\/x.example\\/?u=https%3A%2F%2Forigin.example%2Fp\\u0026t=1"}',
         b'{"share":"https:\\/\\/x.example\\/?u=https%3A%2F%2Fpub.example%3A8080%2Fp\\u0026t=1"}'),
        (b"?u=+https%3A%2F%2Fwww.origin.example+", b"?u=+https%3A%2F%2Fpub.example%3A8080+"),
        (b"?u=http%3A%2F%2Forigin-internal%3A8443%2Fx", b"?u=https%3A%2F%2Fpub.example%3A8080%2Fx"),
        # \u002F-escaped (serialize-javascript, some JSON encoders)
        (b'"https:\\u002F\\u002Forigin.example\\u002Fa"', b'"https:\\u002F\\u002Fpub.example:8080\\u002Fa"'),
        (b'"\\u002f\\u002forigin.example"', b'"\\u002f\\u002fpub.example:8080"'),
        # untouched: malformed, double-encoded, other authorities
        (b"?u=http%3A%2F%2Forigin.example.evil%2F", b"?u=http%3A%2F%2Forigin.example.evil%2F"),
        (b"?u=http%253A%252F%252Forigin.example%252F", b"?u=http%253A%252F%252Forigin.example%252F"),
        (b"?u=%2Forigin.example", b"?u=%2Forigin.example"),
        (b"?u=http%3A%2F%2Forigin-internal%3A8444", b"?u=http%3A%2F%2Forigin-internal%3A8444"),
        (b"?u=%2%2F%2Forigin.examplex", b"?u=%2%2F%2Forigin.examplex"),
        (b"?u=%zz%2Forigin.example-cdn", b"?u=%zz%2Forigin.example-cdn"),
    ],
)
def test_percent_and_unicode_escaped_forms(src: bytes, expected: bytes) -> None:
    assert RW.rewrite(src) == expected


@pytest.mark.parametrize(
    "value,expected",
    [
        ("HTTPS://ORIGIN.EXAMPLE/p", "https://pub.example:8080/p"),
        ("https://origin.example./p", "https://pub.example:8080/p"),
        ("https://origin.example:443/p", "https://pub.example:8080/p"),
        ("https:\\\\origin.example\\p", "https://pub.example:8080\\p"),
        ("https:/\\origin.example/p", "https://pub.example:8080/p"),
        ("https:////origin.example/p", "https://pub.example:8080/p"),
        ("http:origin.example/p", "https://pub.example:8080/p"),  # other scheme: authority follows
        ("\\\\origin.example/p", "//pub.example:8080/p"),
        ("https://%6Frigin.example/p", "https://pub.example:8080/p"),
        ("https://origin%2Eexample/p", "https://pub.example:8080/p"),
        ("ht\ttps://ori\ngin.example/p", "https://pub.example:8080/p"),
        ("https://user:pw@origin.example/p", "https://user:pw@pub.example:8080/p"),
        ("  //www.origin.example/x ", "  //pub.example:8080/x "),
        ("https://origin-internal:8443/p", "https://pub.example:8080/p"),
        # not the origin: left alone
        # same scheme, no slashes: a relative path; its text takes the one mapping like any string
        ("https:origin.example/p", "https:pub.example:8080/p"),
        ("https://origin.example:444/p", "https://origin.example:444/p"),
        ("https://%6Frigin.example.evil/p", "https://%6Frigin.example.evil/p"),
        ("https://origin-internal/p", "https://origin-internal/p"),
        ("/origin%2Eexample/p", "/origin%2Eexample/p"),
        ("mailto:a@origin.example", "mailto:a@origin.example"),  # user@host is not a hostname boundary
    ],
)
def test_rewrite_url_reads_as_the_browser(value: str, expected: str) -> None:
    assert RW.rewrite_url(value) == expected
    new = RW.rewrite_url_bytes(value.encode())
    assert new is None or new == expected.encode()


PIECES = [
    "https://", "http://", "//", "%3A%2F%2F", "%2F%2F", "%3a%2f%2f", "https%3A", "\\/\\/", "\\u002F",
    "origin.example", "www.origin.example", "origin-internal:8443", "%3A8443", ".", "/", "x", " ", "%2",
    "%25", "-", ":", "?u=", "&", "\\u0026",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join), st.lists(st.integers(0, 400), max_size=5))
def test_streaming_equals_whole_for_every_form(text: str, cuts: list[int]) -> None:
    data = text.encode()
    assert feed_checked(RW, split(data, cuts)) == RW.rewrite(data)


# #22 outbound: an origin URL percent-encoded once whose *host* is percent-encoded too
IP = Origin.parse("http://127.0.0.1:9000")
RW_IP = OriginMatcher(IP).for_request("https", "pub.example:8080")


@pytest.mark.parametrize(
    "rw,src,expected",
    [
        (RW_IP, b"?u=http%3A%2F%2F127%2E0%2E0%2E1%3A9000%2Fp", b"?u=https%3A%2F%2Fpub%2Eexample%3A8080%2Fp"),
        (RW, b"?u=https%3A%2F%2Forigin%2Eexample%2F", b"?u=https%3A%2F%2Fpub%2Eexample%3A8080%2F"),
        (RW, b"?u=https%3a%2f%2forigin%2eexample%2f", b"?u=https%3a%2f%2fpub%2eexample%3a8080%2f"),
        (RW, b"?u=%2F%2F%6Frigin.example%2Fx", b"?u=%2F%2Fpub.example%3A8080%2Fx"),
        (RW, b"?u=%2F%2F%6Frigin.example%2Fx&v=%2F%2Forigin%2Eexample",
         b"?u=%2F%2Fpub.example%3A8080%2Fx&v=%2F%2Fpub%2Eexample%3A8080"),
        (RW, b"?u=https%3A%2F%2Fwww%2Eorigin%2Eexample%2F", b"?u=https%3A%2F%2Fpub%2Eexample%3A8080%2F"),
        # not the origin, double-encoded or malformed: untouched
        (RW, b"?u=https%3A%2F%2Forigin%2Eexample%2Eevil%2F", b"?u=https%3A%2F%2Forigin%2Eexample%2Eevil%2F"),
        (RW, b"?u=https%253A%252F%252Forigin%252Eexample%252F", b"?u=https%253A%252F%252Forigin%252Eexample%252F"),
        (RW, b"?u=%2F%2Forigin%252Eexample", b"?u=%2F%2Forigin%252Eexample"),
        (RW, b"?u=%2F%2Forigin%2example", b"?u=%2F%2Forigin%2example"),
        (RW, b"?u=%2F%2Forigin%2Eexample%3A444", b"?u=%2F%2Forigin%2Eexample%3A444"),
        (RW, b"?u=%2F%2Fx%6Frigin.example", b"?u=%2F%2Fx%6Frigin.example"),
        (RW_IP, b"?u=%2F%2F127%2E0%2E0%2E1%3A90001", b"?u=%2F%2F127%2E0%2E0%2E1%3A90001"),
    ],
)
def test_percent_encoded_host(rw, src: bytes, expected: bytes) -> None:  # type: ignore[no-untyped-def]
    assert rw.rewrite(src) == expected
    assert rw.might_contain(src) or src == expected


ENC_PIECES = ["https%3A%2F%2F", "%2F%2F", "%2f%2f", "origin%2Eexample", "%6Frigin.example", "origin%2eexample",
              "%2F", "%3A443", "%3A444", "%2E", "x", "%25", "%2", "&v=", "origin.example", "e"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ENC_PIECES), max_size=20).map("".join), st.lists(st.integers(0, 300), max_size=5))
def test_streaming_equals_whole_for_encoded_hosts(text: str, cuts: list[int]) -> None:
    data = text.encode()
    assert feed_checked(RW, split(data, cuts)) == RW.rewrite(data)
