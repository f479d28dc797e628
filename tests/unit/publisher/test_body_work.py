"""``relay.BodyWork``: the Stream route's decode -> process -> encode, without sockets.

What it promises the relay: every byte comes out, in order; the encoded output held between sends is
bounded (``_MAX_PENDING_PIECES``) even when no slice pause ever comes; sliced output is sent at a pace set by
the response's own work, not at every pause; a rewriter that swallows input without output is stopped at
the quiet cap."""

from __future__ import annotations

import asyncio
import gzip
import time

import pytest

from sluicegate.edge.asgi import Message
from sluicegate.pipeline import Identity, Transformer, WorkBoundExceeded
from sluicegate.pipeline.codecs import decoder_for, encoder_for
from sluicegate.publisher.relay import _MAX_PENDING_PIECES, _SEND_EVERY_WORK, BodyWork
from sluicegate.publisher.slicing import Slice, lane_for

PIECE = 1024


class Swallow:
    def feed(self, data: bytes) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


def work(processor: Transformer | None = None, *, coding: str = "", quiet_cap: int = 1 << 30) -> BodyWork:
    return BodyWork(
        decoder_for(coding, 1 << 30, PIECE),
        processor if processor is not None else Identity(),
        encoder_for(""),
        Slice(lane_for(asyncio.get_running_loop()), 0.0, "rid", "test"),  # unsliced: no pause ever
        quiet_cap,
    )


async def test_every_byte_in_order_and_the_held_output_is_bounded() -> None:
    body = bytes(range(256)) * 1000  # 256,000 bytes = 250 pieces
    w = work(coding="gzip")
    sent: list[bytes] = []

    async def send(message: Message) -> None:
        sent.append(message["body"])

    packed = gzip.compress(body)
    for i in range(0, len(packed), 50_000):
        await w.feed(packed[i : i + 50_000], send)
        rest = w.take()
        if rest:
            sent.append(rest)
    sent.append(w.tail())
    assert b"".join(sent) == body
    assert max(len(s) for s in sent) <= _MAX_PENDING_PIECES * PIECE  # never more held than the bound


async def test_output_withheld_past_the_quiet_cap_is_a_work_bound() -> None:
    w = work(Swallow(), quiet_cap=64 * 1024)

    async def send(message: Message) -> None:
        raise AssertionError("nothing to send")

    with pytest.raises(WorkBoundExceeded) as caught:
        await w.feed(b"x" * (128 * 1024), send)
    assert caught.value.bound == "max_decoded_bytes_without_output"


class Slow:
    """Identity that spends ``seconds`` per piece (a rewriter's CPU, as far as the slice clock can tell)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.pieces = 0

    def feed(self, data: bytes) -> bytes:
        time.sleep(self.seconds)
        self.pieces += 1
        return data

    def finish(self) -> bytes:
        return b""


async def test_sliced_output_is_paced_by_the_responses_own_work() -> None:
    # 1 ms slices over ~200 ms of work: ~100 pauses, but output leaves once at the first pause (bytes out
    # early) and then about every _SEND_EVERY_WORK of work: a sync flush, a chunk and a socket write per
    # send, not per slice
    slow = Slow(0.002)
    w = BodyWork(
        decoder_for("", 1 << 30, PIECE), slow, encoder_for(""),
        Slice(lane_for(asyncio.get_running_loop()), 0.001, "rid", "test"), 1 << 30,
    )
    sent: list[tuple[int, bytes]] = []

    async def send(message: Message) -> None:
        sent.append((slow.pieces, message["body"]))

    body = bytes(range(256)) * 400  # 100 pieces
    await w.feed(body, send)
    rest = w.take()
    assert b"".join(b for _, b in sent) + rest == body
    assert w.slice.pauses + w.slice.stretched >= 50  # spent slices: paused, or run on (nothing else ready)
    assert sent[0][0] <= 2, sent[0][0]  # the first pause sent at once
    assert 2 <= len(sent) <= 0.2 / _SEND_EVERY_WORK + 3, [n for n, _ in sent]
