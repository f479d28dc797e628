"""Inbound mapping (public -> origin), sans-IO: values, query strings, headers, streamed form bodies."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.origin import Origin
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.publisher.inbound import InboundMapper

ORIGIN = Origin.parse("http://127.0.0.1:9000")
PUBLIC = "www.pub.test"
M = InboundMapper.build("http", PUBLIC, ORIGIN)
assert M is not None
FWD = OriginMatcher(ORIGIN).for_request("http", PUBLIC)


@pytest.mark.parametrize(
    "query,expected",
    [
        (b"url=http%3A%2F%2Fwww.pub.test%2Fhello%2F&a=1", b"url=http%3A%2F%2F127.0.0.1%3A9000%2Fhello%2F&a=1"),
        (b"u=http%3a%2f%2fwww.pub.test%2fx", b"u=http%3a%2f%2f127.0.0.1%3a9000%2fx"),  # hex case kept
        (b"u=http://www.pub.test/x", b"u=http://127.0.0.1:9000/x"),  # literal stays literal
        (b"v=%2F%2Fwww.pub.test%2Fy", b"v=%2F%2F127.0.0.1%3A9000%2Fy"),  # ':' spelled like '/' around it
        (b"r=http%3A%2F%2FWWW.PUB.TEST%3A80%2F", b"r=http%3A%2F%2F127.0.0.1%3A9000%2F"),
        (b"a=%20+http%3A%2F%2Fwww.pub.test+%20", b"a=%20+http%3A%2F%2F127.0.0.1%3A9000+%20"),
        (
            b"two=http%3A%2F%2Fwww.pub.test%2Fa%2Chttp://www.pub.test/b",
            b"two=http%3A%2F%2F127.0.0.1%3A9000%2Fa%2Chttp://127.0.0.1:9000/b",
        ),
        (b"http://www.pub.test/x=1", b"http://www.pub.test/x=1"),  # names are not mapped
    ],
)
def test_query_values(query: bytes, expected: bytes) -> None:
    assert M.map_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"u=http%3A%2F%2Fwww.pub.test%2Fx%2",  # truncated escape
        b"u=http%3A%2F%2Fwww.pub.test%2F%zz",  # not hex
        b"u=http%253A%252F%252Fwww.pub.test%252Fx",  # encoded twice
        b"u=%252F%252Fwww.pub.test%252Fx",
        b"u=http%3A%2F%2Fwww.pub.test.evil.com%2F",  # another host
        b"u=http%3A%2F%2Fevil-www.pub.test%2F",
        b"u=http%3A%2F%2Fwww.pub.test%3A8443%2F",  # another port
        b"u=http%3A%2F%2F127.0.0.1%3A8080%2F",  # another public host: not this request's
        b"u=%E2%82%AC&v=%C3%A9&w=%ff",
        b"",
        b"&&==&a",
    ],
)
def test_bad_or_foreign_input_untouched(query: bytes) -> None:
    assert M.map_query(query) is query or M.map_query(query) == query


def test_headers() -> None:
    headers = [
        ("Referer", "http://www.pub.test/page?next=http%3A%2F%2Fwww.pub.test%2Fa#f"),
        ("Origin", "http://www.pub.test"),
        ("Cookie", "a=1; back=http%3A%2F%2Fwww.pub.test%2Fcart;c=2"),
        ("X-Other", "http://www.pub.test/"),
        ("Origin", "null"),
        ("Referer", "https://search.example/?q=www.pub.test&u=http%3A%2F%2Fwww.pub.test%2F"),
    ]
    assert M.map_headers(headers) == [
        ("Referer", "http://127.0.0.1:9000/page?next=http%3A%2F%2F127.0.0.1%3A9000%2Fa#f"),
        ("Origin", "http://127.0.0.1:9000"),
        ("Cookie", "a=1; back=http%3A%2F%2F127.0.0.1%3A9000%2Fcart;c=2"),
        ("X-Other", "http://www.pub.test/"),
        ("Origin", "null"),
        ("Referer", "https://search.example/?q=www.pub.test&u=http%3A%2F%2Fwww.pub.test%2F"),  # another site's
    ]


def test_referer_is_decided_by_its_authority_alone() -> None:
    """A Referer from another site is left as it is even when the public host stands bare in its path
    or query (``rewrite_url`` maps a bare host anywhere; the inbound mapping must not); on the public
    host, the authority and query values are mapped and the path is left alone, like a request path."""
    foreign = [("Referer", "https://search.example/www.pub.test/?q=www.pub.test")]
    assert M.map_headers(foreign) == foreign
    own = [("Referer", "http://www.pub.test/tag/www.pub.test/?q=www.pub.test&r=1")]
    assert M.map_headers(own) == [("Referer", "http://127.0.0.1:9000/tag/www.pub.test/?q=127.0.0.1:9000&r=1")]


def test_target_is_origin_host_header_when_set() -> None:
    m = InboundMapper.build("https", "pub.example", Origin.parse("http://10.0.0.5:8080"), "www.real.example")
    assert m is not None
    assert m.map_query(b"u=https%3A%2F%2Fpub.example%2F") == b"u=http%3A%2F%2Fwww.real.example%2F"


# -- the value-level round trip: whatever spelling the origin used comes back byte for byte -----------

_RESERVED = b":/?#[]@!$&'()*+,;=% "


@st.composite
def spelled_values(draw: st.DrawFn, encoded_hosts: bool = True) -> tuple[bytes, bytes]:
    """(what the origin wrote, what the browser sends back after the outbound mapping): each part is a
    text with origin URLs spelled in one consistent style (which bytes are percent-encoded, hex case)."""
    # (the origin's own scheme: the outbound mapping writes the browser's scheme, so an origin URL in the
    # other scheme or in upper case comes back in the origin's: docs/round-trip.md)
    origin_form = st.sampled_from(["http://127.0.0.1:9000", "//127.0.0.1:9000", "127.0.0.1:9000"])
    filler = st.text(alphabet="abcxyz019-._~:/?=#@!$'()*,;+ é", max_size=12)
    parts = draw(st.lists(st.tuples(filler, origin_form, filler), min_size=1, max_size=4))
    sent_by_origin, sent_by_browser = [], []
    for pre, url, post in parts:
        encode = draw(st.sets(st.sampled_from(list(_RESERVED)), max_size=len(_RESERVED)))
        encode |= {ord("%"), ord("&"), ord("#")}  # what makes a value a value
        # The public host has no port and the origin's has: a ':' is inserted, and when the value holds
        # no ':' of its own its spelling is inferred from '/' (every common encoder but Python's quote()
        # encodes both or neither). A value that encodes one and not the other is out of this property.
        if ord("/") in encode:
            encode.add(ord(":"))
            if encoded_hosts and draw(st.booleans()):  # #22: the host percent-encoded too (its dots)
                encode.add(ord("."))
        else:
            encode.discard(ord(":"))
        lower = draw(st.booleans())
        text = f"{pre} {url}/p {post}".encode()
        public = FWD.rewrite(text)

        def spell(data: bytes, encode: set[int] = encode, lower: bool = lower) -> bytes:
            out = bytearray()
            for c in data:
                if c in encode or c >= 0x80:
                    out += (b"%%%02x" if lower else b"%%%02X") % c
                else:
                    out.append(c)
            return bytes(out)

        sent_by_origin.append(spell(text))
        sent_by_browser.append(spell(public))
    return b"%26".join(sent_by_origin), b"%26".join(sent_by_browser)


@settings(max_examples=300, deadline=None)
@given(spelled_values())
def test_value_round_trip(pair: tuple[bytes, bytes]) -> None:
    origin_wrote, browser_sends = pair
    assert M.values.map(browser_sends) == origin_wrote


@pytest.mark.parametrize(
    "page",
    [b"http%3A%2F%2F127%2E0%2E0%2E1%3A9000%2Fp", b"http%3a%2f%2f127%2e0%2e0%2e1%3a9000%2fp",
     b"x=1&u=%2F%2F127%2E0%2E0%2E1%3A9000%2Fp%2E1"],
)
def test_percent_encoded_host_round_trip(page: bytes) -> None:
    """#22: outbound maps a once-encoded URL whose host is encoded too; inbound brings back the page's bytes."""
    sent = FWD.rewrite(page)
    assert b"www%2" in sent.lower() and b"127" not in sent
    assert M.values.map(sent) == page


# -- streamed form bodies ----------------------------------------------------------------------------


def form_body(n: int) -> bytes:
    fields = [
        b"log=admin",
        b"redirect_to=http%3A%2F%2Fwww.pub.test%2Fwp-admin%2F",
        b"_wp_http_referer=%2Fpage%2F%3Fu%3Dhttp%253A%252F%252Fwww.pub.test",
        b"comment=" + b"hello+world+" * n + b"see+http%3A%2F%2Fwww.pub.test%2Fx+" + b"ok" * n,
        b"plain=http://www.pub.test/a",
        b"bad=%zz%2",
    ]
    return b"&".join(fields)


def expected_form(n: int) -> bytes:
    return (
        form_body(n)
        .replace(b"http%3A%2F%2Fwww.pub.test", b"http%3A%2F%2F127.0.0.1%3A9000")
        .replace(b"http://www.pub.test", b"http://127.0.0.1:9000")
        # a field whose text holds an encoded URL, encoded once more by the browser: mapped too
        .replace(b"http%253A%252F%252Fwww.pub.test", b"http%253A%252F%252F127.0.0.1%253A9000")
    )


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 3000), cuts=st.lists(st.integers(0, 40000), max_size=12))
def test_form_body_any_split(n: int, cuts: list[int]) -> None:
    body = form_body(n)
    fm = M.form_mapper(hold=1024, limit=1 << 30)
    out = []
    prev = 0
    for c in sorted({min(c, len(body)) for c in cuts}):
        out.append(fm.feed(body[prev:c]))
        prev = c
    out.append(fm.feed(body[prev:]))
    out.append(fm.finish())
    assert b"".join(out) == expected_form(n)


def test_form_body_hold_is_bounded() -> None:
    fm = M.form_mapper(hold=4096, limit=1 << 30)
    fm.feed(b"big=")
    emitted = 0
    held_max = 0
    for _ in range(2000):  # 2 MB of one field, 1 KiB chunks
        emitted += len(fm.feed(b"q" * 1024))
        held_max = max(held_max, 4 + 1024 * (_ + 1) - emitted)
    assert held_max <= 4096 + 1024
    fm2 = M.form_mapper(hold=4096, limit=1 << 30)
    fm2.feed(b"k=")
    run = b"www.pub.test." * 2000  # no safe point anywhere: passed on unmapped, not held
    out = fm2.feed(run) + fm2.finish()
    assert out == run and fm2.unmapped_runs == 1


def test_form_body_limit_passes_the_rest_through() -> None:
    fm = M.form_mapper(hold=1024, limit=2048)
    head = b"a=http://www.pub.test/&b=" + b"x" * 3000
    tail = b"&c=http://www.pub.test/"
    out = fm.feed(head) + fm.feed(tail) + fm.finish()
    assert out == b"a=http://127.0.0.1:9000/&b=" + b"x" * 3000 + tail


def test_host_with_escaped_letters_is_found() -> None:
    assert M.map_query(b"u=http%3A%2F%2F%77ww.pub.test%2Fx") == b"u=http%3A%2F%2F127.0.0.1%3A9000%2Fx"


def test_ipv6_public_host() -> None:
    m = InboundMapper.build("http", "[::1]:8080", ORIGIN)
    assert m is not None
    assert m.map_query(b"u=http%3A%2F%2F%5B%3A%3A1%5D%3A8080%2Fx") == b"u=http%3A%2F%2F127.0.0.1%3A9000%2Fx"
    assert m.map_url("http://[::1]:8080/p") == "http://127.0.0.1:9000/p"


def test_body_mapper_only_for_plain_form_bodies() -> None:
    form = [("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")]
    assert M.body_mapper(form, 1024, 1 << 20) is not None
    assert M.body_mapper([*form, ("Content-Encoding", "gzip")], 1024, 1 << 20) is None
    assert M.body_mapper([*form, ("Content-Encoding", "identity")], 1024, 1 << 20) is not None
    assert M.body_mapper([("Content-Type", "multipart/form-data; boundary=x")], 1024, 1 << 20) is None
    assert M.body_mapper([("Content-Type", "application/json")], 1024, 1 << 20) is None
    assert M.body_mapper([], 1024, 1 << 20) is None


def test_form_values_spell_inserted_bytes_as_a_browser_does() -> None:
    # no ':' or '/' anywhere near: a query value keeps a literal ':' (hand-written), a form value is
    # the browser's serialisation, which always encodes ':'
    assert M.map_query(b"host=www.pub.test") == b"host=127.0.0.1:9000"
    fm = M.form_mapper(hold=1024, limit=1 << 20)
    assert fm.feed(b"host=www.pub.test&x=1") + fm.finish() == b"host=127.0.0.1%3A9000&x=1"


def test_form_field_holding_an_encoded_url() -> None:
    """<input name=_wp_http_referer value="/wp-login.php?r=http%3A%2F%2Fwww.pub.test%2F"> (as the
    outbound mapping wrote it) is submitted by the browser encoded once more; the origin must get back
    the browser's encoding of the value it wrote."""
    fm = M.form_mapper(hold=1024, limit=1 << 20)
    sent = b"_wp_http_referer=%2Fwp-login.php%3Fr%3Dhttp%253A%252F%252Fwww.pub.test%252F&a=1"
    want = b"_wp_http_referer=%2Fwp-login.php%3Fr%3Dhttp%253A%252F%252F127.0.0.1%253A9000%252F&a=1"
    assert fm.feed(sent) + fm.finish() == want
    # three layers deep is not something the outbound mapping wrote: untouched
    fm = M.form_mapper(hold=1024, limit=1 << 20)
    deep = b"r=http%25253A%25252F%25252Fwww.pub.test%25252F"
    assert fm.feed(deep) + fm.finish() == deep


@pytest.mark.parametrize("k", [0, 1, 7, 13, 20, 31, 60])
def test_form_field_with_encoded_text_around_an_encoded_url(k: int) -> None:
    """Escapes of the page's own text near the URL, at every distance: the inner layer's escapes are
    never cut in two at the edge of a neighbourhood (which would read as malformed and skip the URL)."""
    text = "a%2Fb" * k + "&r=http%3A%2F%2Fwww.pub.test%2Fx" + "c%2Fd" * k
    want = text.replace("www.pub.test", "127.0.0.1%3A9000")
    fm = M.form_mapper(hold=1024, limit=1 << 20)
    body = b"f=" + urllib.parse.quote_plus(text, safe="").encode()
    assert fm.feed(body) + fm.finish() == b"f=" + urllib.parse.quote_plus(want, safe="").encode()


@settings(max_examples=300, deadline=None)
@given(spelled_values(encoded_hosts=False), st.lists(st.integers(0, 400), max_size=6))
def test_form_value_round_trip(pair: tuple[bytes, bytes], cuts: list[int]) -> None:
    """A page's field text (plain or once-encoded origin URLs, as ``spelled_values`` writes them),
    mapped outbound, serialised by the browser, streamed through the form mapper in any split: the
    origin gets the browser's serialisation of the text it wrote."""
    origin_wrote, browser_has = pair

    def submit(text: bytes) -> bytes:
        return b"a=1&f=" + urllib.parse.quote_plus(text.decode(), safe="").encode() + b"&z=2"

    body = submit(browser_has)
    fm = M.form_mapper(hold=1024, limit=1 << 20)
    out, prev = [], 0
    for c in sorted({min(c, len(body)) for c in cuts}):
        out.append(fm.feed(body[prev:c]))
        prev = c
    out.append(fm.feed(body[prev:]))
    out.append(fm.finish())
    assert b"".join(out) == submit(origin_wrote)
