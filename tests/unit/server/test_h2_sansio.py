"""The sans-IO parts of server/h2: the request-head rules (headers.parse_request, response_headers) and the frame
guard (guard.FrameGuard: any chunking gives the same verdict; budgets refill with time)."""

from __future__ import annotations

import pytest
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.loader import load_settings_text
from sluicegate.server.h2.guard import PREFACE, Budget, Calm, FrameGuard
from sluicegate.server.h2.headers import Malformed, never_indexed, parse_request, response_headers
from sluicegate.server.h2.options import H2Options

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"www.pub.test"), (b":path", b"/a%20b?x=1")]


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


def test_a_valid_head_becomes_scope_parts() -> None:
    req = parse_request([*BASE, (b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2"), (b"te", b"trailers")])
    assert req.method == "GET" and req.raw_path == b"/a%20b" and req.path == "/a b" and req.query == b"x=1"
    assert req.headers[0] == (b"host", b"www.pub.test")  # :authority is the Host the faces read
    assert (b"cookie", b"a=1; b=2") in req.headers  # crumbs joined for an HTTP/1.1 origin (RFC 9113 §8.2.3)
    assert not any(n == b"transfer-encoding" for n, _ in req.headers)


def test_a_body_without_length_is_presented_as_chunked() -> None:
    assert (b"transfer-encoding", b"chunked") in parse_request(BASE, body_follows=True).headers
    req = parse_request([*BASE, (b"content-length", b"5")], body_follows=True)
    assert not any(n == b"transfer-encoding" for n, _ in req.headers)


def test_host_without_authority_and_options_star() -> None:
    req = parse_request([(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":path", b"*"), (b"host", b"h.test")])
    assert req.authority == b"h.test" and req.raw_path == b"*"
    assert parse_request([*BASE, (b"host", b"www.pub.test")]).headers.count((b"host", b"www.pub.test")) == 1


@pytest.mark.parametrize("fields", [
    [*BASE, (b":path", b"/x")],
    [*BASE[1:]],
    [(b":method", b"CONNECT"), (b":authority", b"a.test:443")],
    [(b":method", b"G T"), *BASE[1:]],
    [*BASE[:3], (b":path", b"")],
    [*BASE[:3], (b":path", b"*")],
    [*BASE, (b"x-a", b" padded")],
    [*BASE, (b"x-a", b"nul\x00")],
    [*BASE, (b"bad name", b"v")],
    [*BASE, (b"proxy-connection", b"close")],
    [*BASE, (b"host", b"a.test"), (b"host", b"b.test")],
])
def test_malformed_heads(fields: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(Malformed):
        parse_request(fields)


def test_response_headers_drop_what_h2_forbids() -> None:
    out = response_headers(200, [(b"Content-Type", b"text/html"), (b"connection", b"close"),
                                 (b"transfer-encoding", b"chunked"), (b"keep-alive", b"5"), (b"x-a", b"1")])
    assert out == [(b":status", b"200"), (b"content-type", b"text/html"), (b"x-a", b"1")]


def stream_of_frames() -> bytes:
    return PREFACE + b"".join([
        frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64"),
        frame(1, 0x4, 1, b"h" * 100),
        frame(0, 0, 1, b"d" * 5000),
        frame(1, 0, 3, b"h" * 3000),  # a block continued...
        frame(9, 0, 3, b"c" * 3000),
        frame(9, 0x4, 3, b"c" * 10),  # ...and ended
        frame(8, 0, 0, b"\x00\x00\x01\x00"),
        frame(0, 0x1, 1, b""),
    ])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9000), max_size=40))
def test_any_chunking_gives_the_same_verdict(cuts: list[int]) -> None:
    data = stream_of_frames()
    g = FrameGuard(max_block=6010, reset_rate=10, control_rate=10, now=0.0)
    pos = 0
    for c in cuts:
        g.feed(data[pos:pos + c], 0.0)
        pos += c
    g.feed(data[pos:], 0.0)
    assert not g.in_block and g._skip == 0 and g._head == b""
    too_small = FrameGuard(max_block=6009, reset_rate=10, control_rate=10, now=0.0)
    with pytest.raises(Calm):
        for i in range(0, len(data), max(1, cuts[0] if cuts else 7)):
            too_small.feed(data[i:i + max(1, cuts[0] if cuts else 7)], 0.0)


def test_open_block_and_flood_budgets() -> None:
    g = FrameGuard(max_block=65536, reset_rate=5, control_rate=5, now=0.0)
    g.feed(PREFACE + frame(1, 0, 1, b"x" * 10), 0.0)
    assert g.in_block
    g.feed(frame(9, 0x4, 1, b"y"), 0.0)
    assert not g.in_block
    ping = frame(6, 0, 0, b"12345678")
    g.feed(ping * 10, 0.0)  # burst = twice the rate
    with pytest.raises(Calm):
        g.feed(ping, 0.0)
    g.feed(ping * 5, 1.0)  # refilled at 5 per second
    g.feed(frame(6, 0x1, 0, b"12345678") * 100, 1.0)  # PING ACKs cost nothing
    for _ in range(10):
        g.charge_reset(2.0)
    with pytest.raises(Calm):
        g.charge_reset(2.0)


def test_budget_refills_to_burst_only() -> None:
    b = Budget(rate=2, burst=4, now=0.0)
    assert all(b.take(0.0) for _ in range(4)) and not b.take(0.0)
    assert b.take(100.0) and b.tokens == 3


def test_never_indexed_follows_the_configured_request_id_header() -> None:
    """The request-id header is never-indexed under the name [server] request_id_header gives it; secrets and
    volatile fields always are; the default config keeps x-request-id."""
    assert b"x-request-id" in H2Options().never_indexed
    assert H2Options.from_settings(load_settings_text("", "default.toml")).never_indexed == never_indexed()
    opts = H2Options.from_settings(load_settings_text('[server]\nrequest_id_header = "X-Trace-Id"\n', "s.toml"))
    assert b"x-trace-id" in opts.never_indexed and b"x-request-id" not in opts.never_indexed
    assert {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie", b"date"} <= opts.never_indexed
    fields = [(b"X-Trace-Id", b"abc"), (b"x-request-id", b"zzz"), (b"set-cookie", b"a=1"),
              (b"authorization", b"Bearer s"), (b"cookie", b"c=2"), (b"content-type", b"text/plain")]
    out = response_headers(200, fields, opts.never_indexed)
    assert [(bytes(n), bytes(v)) for n, v in out] == [(b":status", b"200"), (b"x-trace-id", b"abc"),
                                                      (b"x-request-id", b"zzz"), (b"set-cookie", b"a=1"),
                                                      (b"authorization", b"Bearer s"), (b"cookie", b"c=2"),
                                                      (b"content-type", b"text/plain")]
    never = [bytes(h[0]) for h in out if isinstance(h, NeverIndexedHeaderTuple)]
    assert never == [b"x-trace-id", b"set-cookie", b"authorization", b"cookie"]
    # what the client's HPACK decoder sees: the never-indexed bit (0x10 literal) on exactly those fields
    decoded = Decoder().decode(Encoder().encode(out), raw=True)
    assert [bytes(h[0]) for h in decoded if isinstance(h, NeverIndexedHeaderTuple)] == never
