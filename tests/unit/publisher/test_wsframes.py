"""The sans-IO WebSocket frame scanner: bytes pass unchanged whatever the chunking, framing rules enforced."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluicegate.publisher import wsframes as wf


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = False, rsv1: bool = False) -> bytes:
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((b0, (0x80 if mask else 0) | n))
    elif n < 65536:
        head = bytes((b0, (0x80 if mask else 0) | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, (0x80 if mask else 0) | 127)) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def stream(masked: bool) -> bytes:
    return b"".join([
        frame(0x1, b"hello", mask=masked),
        frame(0x9, b"ping!", mask=masked),
        frame(0x2, b"x" * 300, fin=False, mask=masked),  # fragmented binary, 16-bit length
        frame(0xA, b"", mask=masked),  # a control frame between fragments is allowed
        frame(0x0, b"y" * 70_000, mask=masked),  # 64-bit length, final fragment
        frame(0x1, b"deflated", mask=masked, rsv1=True),  # extension bits pass
        frame(0x8, struct.pack("!H", 4001) + b"bye", mask=masked),
    ])


def run(scanner: wf.FrameScanner, data: bytes, cuts: list[int]) -> bytes:
    out = []
    last = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out.append(scanner.feed(data[last:cut]))
        last = cut
    return b"".join(out)


@pytest.mark.parametrize("masked", [True, False])
def test_every_byte_passes_unchanged_and_the_close_code_is_read(masked: bool) -> None:
    data = stream(masked)
    s = wf.FrameScanner(masked=masked, max_message=1 << 20)
    assert s.feed(data) == data
    assert s.frames == 7 and s.closed and s.close_code == 4001 and s.at_boundary


@given(st.lists(st.integers(min_value=0, max_value=70_500), max_size=40))
def test_any_chunking_gives_the_same_bytes(cuts: list[int]) -> None:
    data = stream(True)
    s = wf.FrameScanner(masked=True, max_message=1 << 20)
    assert run(s, data, cuts) == data
    assert s.close_code == 4001


def test_one_byte_chunks_hold_a_header_until_it_is_complete() -> None:
    data = frame(0x2, b"abc" * 100, mask=True)
    s = wf.FrameScanner(masked=True, max_message=1024)
    outs = [s.feed(data[i:i + 1]) for i in range(len(data))]
    assert outs[:7] == [b""] * 7  # 2 + 2 (length) + 4 (mask) - 1: nothing before the header is whole
    assert outs[7] == data[:8]
    assert b"".join(outs) == data


def test_a_message_over_the_bound_is_stopped_before_its_frame() -> None:
    s = wf.FrameScanner(masked=False, max_message=1000)
    first = frame(0x2, b"a" * 600, fin=False)
    assert s.feed(first) == first
    with pytest.raises(wf.FrameError) as info:
        s.feed(frame(0x0, b"b" * 600))  # 1200 in total: over
    assert info.value.code == wf.CLOSE_TOO_BIG
    assert s.at_boundary  # nothing of the refused frame was forwarded: a close frame may follow


def test_a_message_exactly_at_the_bound_passes() -> None:
    s = wf.FrameScanner(masked=False, max_message=1000)
    data = frame(0x2, b"a" * 1000)
    assert s.feed(data) == data


@pytest.mark.parametrize(
    ("data", "masked"),
    [
        (frame(0x1, b"x", mask=False), True),  # client frame without mask
        (frame(0x1, b"x", mask=True), False),  # server frame with mask
        (frame(0x3, b"x"), False),  # reserved opcode
        (frame(0x9, b"x" * 126), False),  # control frame too long
        (frame(0x9, b"x", fin=False), False),  # fragmented control frame
        (frame(0x0, b"x"), False),  # continuation without a message
        (frame(0x1, b"x", fin=False) + frame(0x1, b"y"), False),  # new message inside a fragmented one
        (frame(0x8, b"") + frame(0x1, b"late"), False),  # data after close
    ],
)
def test_broken_framing_is_a_protocol_error(data: bytes, masked: bool) -> None:
    s = wf.FrameScanner(masked=masked, max_message=1 << 20)
    with pytest.raises(wf.FrameError) as info:
        s.feed(data)
    assert info.value.code == wf.CLOSE_PROTOCOL_ERROR


def test_a_close_without_a_code_reads_as_1005() -> None:
    s = wf.FrameScanner(masked=True, max_message=1024)
    s.feed(frame(0x8, b"", mask=True))
    assert s.closed and s.close_code == wf.CLOSE_NO_STATUS


def test_the_proxys_close_frames_parse_as_frames_of_their_direction() -> None:
    for masked in (True, False):
        data = wf.close_frame(wf.CLOSE_TOO_BIG, "message too big", masked=masked)
        s = wf.FrameScanner(masked=masked, max_message=1024)
        assert s.feed(data) == data
        assert s.close_code == wf.CLOSE_TOO_BIG
