"""SSE tap: returns input unchanged, split-invariant usage extraction, boundaries, caps."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluicegate.inference.sse import JsonTap, SseTap, parse_events

OPENAI = (b'data: {"choices":[{"delta":{"content":"h\xc3\xa9"}}],"usage":null}\n\n'
          b'data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":22,'
          b'"prompt_tokens_details":{"cached_tokens":3}}}\n\ndata: [DONE]\n\n')
ANTHROPIC = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":5,'
             b'"output_tokens":1,"cache_creation_input_tokens":4}}}\n\n'
             b"event: ping\ndata: {\"type\":\"ping\"}\n\n: keep-alive\n\n"
             b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n'
             b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":17}}\n\n'
             b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
RESPONSES = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"x"}\n\n'
             b'event: response.completed\ndata: {"type":"response.completed","response":{"usage":'
             b'{"input_tokens":2,"output_tokens":3}}}\n\n')


def _feed(stream: bytes, cuts: list[int]) -> SseTap:
    tap = SseTap(1024)
    pos = 0
    out = b""
    for c in [*sorted(set(cuts)), len(stream)]:
        piece = stream[pos:c]
        assert tap.feed(piece) is piece  # the very same object comes back
        out += piece
        pos = c
    assert out == stream
    return tap


@pytest.mark.parametrize(("stream", "expect"), [
    (OPENAI, (11, 22, 3, None)),
    (ANTHROPIC, (5, 17, None, 4)),
    (RESPONSES, (2, 3, None, None)),
    (OPENAI.replace(b"\n", b"\r\n"), (11, 22, 3, None)),
    (OPENAI.replace(b"\n", b"\r"), (11, 22, 3, None)),
])
@given(cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12))
def test_usage_split_invariant(stream: bytes, expect: tuple[int | None, ...], cuts: list[int]) -> None:
    tap = _feed(stream, [c for c in cuts if c < len(stream)])
    u = tap.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_creation_tokens) == expect
    assert tap.at_boundary


def test_byte_at_a_time_and_boundary_tracking() -> None:
    tap = SseTap()
    for i in range(len(ANTHROPIC)):
        tap.feed(ANTHROPIC[i : i + 1])
    assert tap.usage.output_tokens == 17
    tap.feed(b"data: {\"partial")
    assert not tap.at_boundary and tap.pending_bytes == len(b"data: {\"partial") and tap.closing_bytes() == b"\n\n"
    tap.feed(b"\"}\n\n")
    assert tap.at_boundary


def test_oversized_event_is_skipped_and_bounded() -> None:
    tap = SseTap(max_event_bytes=2048)
    tap.feed(b"data: " + b"x" * 5000)
    assert tap.skipping and tap.pending_bytes == 0
    tap.feed(b"y" * 5000 + b"\n\n" + OPENAI)
    assert not tap.skipping and tap.overflowed == 1
    assert tap.usage.output_tokens == 22


def test_multiline_data_and_fields() -> None:
    evs = parse_events(b"id: 1\nretry: 10\nevent: e\ndata:a\ndata: b\n\n:c\n\ndata: x\r\n\r\n")
    assert evs == [("e", "a\nb"), ("", "x")]


def test_error_event_noticed_and_invalid_utf8_tolerated() -> None:
    tap = SseTap()
    tap.feed(b'data: {"x":"\xff\xfe"}\n\nevent: error\ndata: {"type":"error","error":{}}\n\n')
    assert tap.saw_error


def test_json_tap() -> None:
    body = json.dumps({"usage": {"input_tokens": 4, "output_tokens": 6}}).encode()
    tap = JsonTap()
    tap.feed(body[:5])
    tap.feed(body[5:])
    u = tap.finish()
    assert (u.input_tokens, u.output_tokens) == (4, 6)
    small = JsonTap(max_bytes=4)
    small.feed(body)
    assert not small.finish().known


@pytest.mark.parametrize("stream", [OPENAI, ANTHROPIC, RESPONSES, OPENAI.replace(b"\n", b"\r\n"),
                                    b"data: " + b"x" * 3000 + b"\n\n" + OPENAI])
@given(cuts=st.lists(st.integers(min_value=0, max_value=3700), max_size=12))
def test_split_relays_every_byte_once_on_event_boundaries(stream: bytes, cuts: list[int]) -> None:
    """``split`` (the relay's path) sends the same bytes in order; what it holds back is the open event."""
    tap = SseTap(1024)
    reference = SseTap(1024)
    out = b""
    pos = 0
    for c in [*sorted({c for c in cuts if c < len(stream)}), len(stream)]:
        piece = stream[pos:c]
        ready = tap.split(piece)
        reference.feed(piece)
        out += ready
        assert tap.held() == stream[len(out):c] or tap.skipping
        assert tap.pending_bytes == reference.pending_bytes
        pos = c
    out += tap.held()
    assert out == stream
    assert tap.usage == reference.usage and tap.at_boundary
