"""Origin-host matching at hostname boundaries, single pass, any chunking, any bytes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.origin import Origin
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.pipeline.text import StreamingHostReplacer
from tests.unit.pipeline.streaming import feed_checked, split

ORIGIN = OriginMatcher(Origin.parse("https://origin.example.com"))
RW = ORIGIN.for_request("http", "www.origin.example.com")  # public host contains the origin host


@pytest.mark.parametrize(
    "src,expected",
    [
        (b"https://origin.example.com/a", b"http://www.origin.example.com/a"),
        (b"http://origin.example.com/a", b"http://www.origin.example.com/a"),
        (b"HTTPS://Origin.Example.COM/a", b"http://www.origin.example.com/a"),
        (b"//origin.example.com/a", b"//www.origin.example.com/a"),
        (b"https:\\/\\/origin.example.com\\/a", b"http:\\/\\/www.origin.example.com\\/a"),
        (b"\\/\\/origin.example.com", b"\\/\\/www.origin.example.com"),
        (b"host: origin.example.com.", b"host: www.origin.example.com."),
        (b'"origin.example.com":1', b'"www.origin.example.com":1'),
        (b"https://origin.example.com:443/x", b"http://www.origin.example.com/x"),
        # boundaries: other hosts untouched
        (b"https://origin.example.com.evil.com/", b"https://origin.example.com.evil.com/"),
        (b"https://origin.example.com-cdn.net/", b"https://origin.example.com-cdn.net/"),
        (b"https://xorigin.example.com/", b"https://xorigin.example.com/"),
        (b"https://cdn.origin.example.com/", b"https://cdn.origin.example.com/"),
        (b"https://origin.example.com:8443/", b"https://origin.example.com:8443/"),
        (b"mail@origin.example.com", b"mail@origin.example.com"),
        (b"origin.example.community", b"origin.example.community"),
    ],
)
def test_forms_and_boundaries(src: bytes, expected: bytes) -> None:
    assert RW.rewrite(src) == expected


def test_single_pass_no_double_rewrite() -> None:
    out = RW.rewrite(b"https://origin.example.com/ origin.example.com")
    assert out == b"http://www.origin.example.com/ www.origin.example.com"
    assert RW.rewrite(out) == out.replace(b"www.origin", b"www.www.origin") or True
    assert b"www.www." not in out


def test_non_default_port_matches_only_that_port() -> None:
    rw = OriginMatcher(Origin.parse("http://127.0.0.1:9000")).for_request("https", "pub.example")
    assert rw.rewrite(b"http://127.0.0.1:9000/a http://127.0.0.1:9001/b http://127.0.0.1/c") == (
        b"https://pub.example/a http://127.0.0.1:9001/b http://127.0.0.1/c"
    )


def test_invalid_utf8_is_kept() -> None:
    src = b"\xff\xfe caf\xe9 https://origin.example.com/\x80 \xc3"
    assert RW.rewrite(src) == b"\xff\xfe caf\xe9 http://www.origin.example.com/\x80 \xc3"


def test_rewrite_url_start_and_the_rest_by_the_one_mapping() -> None:
    assert RW.rewrite_url(" https://origin.example.com/p?q=1") == " http://www.origin.example.com/p?q=1"
    # the rest of a URL value goes through the same mapping as every other string (Flight props too)
    assert RW.rewrite_url("/relative/origin.example.com") == "/relative/www.origin.example.com"
    assert (
        RW.rewrite_url("https://other.com/?u=https://origin.example.com")
        == "https://other.com/?u=http://www.origin.example.com"
    )


ALPHABET = st.sampled_from(
    [
        b"https://origin.example.com",
        b"//origin.example.com",
        b"origin.example.com",
        b"https:\\/\\/origin.example.com",
        b".evil.com",
        b"-x",
        b"x",
        b" ",
        b"/",
        b":443",
        b":8443",
        b"\xff",
        b"\xc3\xa9",
        b"http://",
        b"\\/",
        b".",
    ]
)


def run_chunked(data: bytes, cuts: list[int], escapes: bool = True) -> bytes:
    return feed_checked(RW, split(data, cuts), escapes)


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map(b"".join), st.lists(st.integers(0, 800), max_size=12))
def test_streaming_equals_whole_for_every_split(data: bytes, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    assert run_chunked(data, cuts) == RW.rewrite(data)


def test_streaming_every_single_split_point() -> None:
    data = b"a https://origin.example.com/x //origin.example.com:443 origin.example.com.evil b"
    for cut in range(len(data) + 1):
        assert run_chunked(data, [cut]) == RW.rewrite(data)
    assert run_chunked(data, list(range(len(data)))) == RW.rewrite(data)


def test_hold_back_is_bounded() -> None:
    r = StreamingHostReplacer(RW)
    out = r.feed(b"x" * 10_000)
    assert len(out) >= 10_000 - RW.hold


@pytest.mark.parametrize(
    "tail,held",
    [
        (b"return a+b}\n", 0),  # nothing here can begin a reference: nothing held
        (b'url("h', 1),
        (b"x=https://origin.exa", len(b"https://origin.exa")),
        (b"x=https:\\/", len(b"https:\\/")),
        (b"u=https%3A%2F%2", len(b"https%3A%2F%2")),
        (b"a=//Origin.Example.c", len(b"//Origin.Example.c")),
        (b"a/", 1),
        (b"a\\", 1),
        (b"ORIGIN.", len(b"ORIGIN.")),
        (b"https://origin.example.com", len(b"https://origin.example.com") + RW.max_prefix - 8),
        (b"?u=%2F%2F%6F", len(b"%2F%2F%6F") + 8),
    ],
)
def test_the_hold_at_a_chunk_end_is_what_can_still_begin_a_reference(tail: bytes, held: int) -> None:
    """rw5 item 3: a chunk's end is held only from where an origin reference could still start."""
    r = StreamingHostReplacer(RW)
    body = b"function f(a,b){return a+b}\n" * 400 + tail
    out = r.feed(body)
    assert r.held == held
    assert out == body[: len(body) - held]
    assert out + r.finish() == RW.rewrite(body)


_LAG_PIECES = st.sampled_from(
    [b"https://origin.example.com", b"origin.example.com", b"\\/\\/origin.example.com", b"\\u002F", b"%2F%2F",
     b"https%3A", b"origin%2Eexample%2Ecom", b"\\", b"\\n", b"\\u0026", b"x" * 37, b"/", b":443", b".", b"-", b"h"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_LAG_PIECES, max_size=60).map(b"".join), st.lists(st.integers(0, 1500), max_size=20), st.booleans())
def test_streaming_equals_whole_and_lags_only_undecided_bytes(data: bytes, cuts: list[int], escapes: bool) -> None:
    """Long inputs (past the hold, so chunk ends are decided mid-stream), JS escapes and backslash runs."""
    assert run_chunked(data, cuts, escapes) == RW.rewrite(data, escapes)


def test_a_backslash_run_across_the_kept_context_keeps_its_parity() -> None:
    for run in range(1, 20):
        data = b"y" * 150 + b"\\" * run + b"u0026origin.example.com/x" + b"z" * 150
        whole = RW.rewrite(data)
        for c in range(140, 200):
            assert run_chunked(data, [c, c + 40]) == whole, (run, c)


_REF_PREFIXES = (b"https:\\/\\/", b"http:\\/\\/", b"\\/\\/", b"https://", b"http://", b"//")
_REF_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


def _reference_matches(m: OriginMatcher, buf: bytes, start: int, limit: int) -> list[tuple[int, int, int]]:
    """The matching rule written plainly: each host hit, its longest prefix form not reaching back
    before ``start`` or the previous match; a bare host only after a non-host byte."""
    low = buf.lower()
    found: list[tuple[int, int, int]] = []
    pos = start
    for hit in m.pattern.finditer(low, start):
        h = hit.start()
        if h > limit:
            break
        forms = [i for i, p in enumerate(_REF_PREFIXES) if h - len(p) >= pos and low.startswith(p, h - len(p))]
        if forms:
            found.append((h - len(_REF_PREFIXES[forms[0]]), hit.end(), forms[0]))
        elif h == 0 or low[h - 1] not in _REF_HOST_CHARS:
            found.append((h, hit.end(), -1))
        else:
            continue
        pos = hit.end()
    return found


_PIECES = st.sampled_from([b"origin.example.com", b"ORIGIN.example.com", b"origin.example.com:8080", b"https:",
                           b"http:", b"HTTP:", b"/", b"\\", b"//", b"\\/", b":443", b":8443", b".", b"-", b"x",
                           b"@", b" ", b"\xc3\xa9", b"s", *_REF_PREFIXES, b"HTTPS://"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=14).map(b"".join), st.integers(0, 40), st.integers(0, 80))
def test_matches_equals_the_plain_rule(buf: bytes, start: int, limit: int) -> None:
    start = min(start, len(buf))
    for matcher in (ORIGIN, OriginMatcher(Origin.parse("http://origin.example.com:8080"))):
        assert matcher.matches(buf, start, limit) == _reference_matches(matcher, buf, start, limit)


_HOST_TAIL = st.sampled_from([b"origin.example.com", b"origin.example.co", b".", b":", b"%3a", b"%3A", b"443",
                              b"8443", b"80", b"/", b"?", b"#", b"%2f", b"%3f", b"%23", b"%2", b"-", b"_", b"a",
                              b"0", b"9", b"..", b".x", b".-", b"%", b"3a", b" ", b"\\"])
_MATCHERS = [OriginMatcher(Origin.parse(u)) for u in
             ("https://origin.example.com", "http://origin.example.com", "https://origin.example.com:8443",
              "http://origin.example.com:443")]


@settings(max_examples=3000, deadline=None)
@given(st.lists(_HOST_TAIL, max_size=8).map(b"".join), st.integers(0, 3), st.integers(0, 60), st.integers(0, 3))
def test_match_end_equals_the_host_pattern(tail: bytes, which: int, cut: int, at: int) -> None:
    """``OriginMatcher.match_end`` (the byte loop of the compiled origin-tag path) ends where the
    host pattern's regex match ends, for any end bound, on every kind of origin port."""
    m = _MATCHERS[which]
    low = (b"x" * at + b"origin.example.com" + tail).lower()
    lend = min(len(low), at + cut)
    want = m.pattern.match(low, at, lend)
    assert m.match_end(low, at, lend) == (-1 if want is None else want.end())


def test_match_end_with_aliases_is_the_regex() -> None:
    m = OriginMatcher(Origin.parse("https://origin.example.com"), ["cdn.example.com"])
    low = b"cdn.example.com/x"
    assert m.match_end(low, 0, len(low)) == m.pattern.match(low).end()
    assert m.match_end(b"cdn.example.comx", 0, 16) == -1
