"""Shared helpers for the Flight unit tests: a rewriter, Next.js-style push scripts, runners."""

from __future__ import annotations

import base64
import json

from sluicegate.config.flight import FlightSettings
from sluicegate.config.origin import Origin
from sluicegate.pipeline.flight import InlineFlightRewriter, build_flight_processor
from sluicegate.pipeline.flight.inline import parse_pushes
from sluicegate.pipeline.flight.jsstring import decode_literal, encode_literal
from sluicegate.pipeline.hosts import HostRewriter, OriginMatcher

ORIGIN = "https://origin.example.com"
PUBLIC = "www.example.com"


def rewriter() -> HostRewriter:
    return OriginMatcher(Origin.parse(ORIGIN)).for_request("https", PUBLIC)


def expected(text: bytes) -> bytes:
    """What a correct rewrite of plain row content looks like (no tricky boundaries)."""
    return rewriter().rewrite(text)


def run_stream(chunks: list[bytes], settings: FlightSettings | None = None) -> bytes:
    p = build_flight_processor(rewriter(), settings or FlightSettings())
    return b"".join(p.feed(c) for c in chunks) + p.finish()


def push_script(piece: bytes | str, kind: int = 1) -> bytes:
    """``self.__next_f.push([1,"..."])`` exactly as Next.js writes it."""
    if kind == 3:
        assert isinstance(piece, bytes)
        value = base64.b64encode(piece).decode()
    else:
        value = piece.decode() if isinstance(piece, bytes) else piece
    return f'self.__next_f.push([{kind},"{encode_literal(value, chr(34))}"])'.encode()


def split_scripts(stream: bytes, cuts: list[int]) -> list[bytes] | None:
    """Cut the stream into push scripts at ``cuts``; None when a cut splits a UTF-8 character."""
    out: list[bytes] = []
    prev = 0
    for c in [*cuts, len(stream)]:
        try:
            text = stream[prev:c].decode()
        except UnicodeDecodeError:
            return None
        out.append(push_script(text))
        prev = c
    return out


def run_inline(
    scripts: list[bytes], *, max_hold: int = 1 << 20, max_row: int = 1 << 24
) -> tuple[list[bytes], InlineFlightRewriter, list[int]]:
    """Feed scripts in order; returns each script's new raw text (plus the extra push script
    ``finish`` asks for, if any), the rewriter, and the stream bytes carried after each call."""
    r = InlineFlightRewriter(rewriter(), max_row_bytes=max_row, max_hold_bytes=max_hold)
    result: list[bytes] = []
    carried: list[int] = []
    for s in scripts:
        res = r.script(s)
        if res.slot is None:
            assert not res.flight and res.ready == []
            result.append(s)
        else:
            assert res.flight and [slot for slot, _ in res.ready] == [res.slot]  # never held
            if res.before:  # the stream broke here: carried bytes get their own script first
                result.append(res.before)
            result.append(res.ready[0][1])
        carried.append(r.held_bytes)
    trailing = r.finish()
    if trailing:
        result.append(trailing)
    return result, r, carried


def stream_of(scripts: list[bytes]) -> bytes:
    """The Flight bytes a browser would assemble from push scripts (what React's client reads)."""
    out = b""
    for s in scripts:
        text = s.decode()
        for lit in parse_pushes(text):
            out += lit.data
    return out


def literal_values(script: bytes) -> list[str]:
    """The JS values of the push literals, decoded independently with ``json`` (a second opinion)."""
    text = script.decode()
    arg = text[text.index("(") + 1 : text.rindex(")")]
    value = json.loads(arg)
    return [value[1]]


__all__ = [
    "ORIGIN",
    "PUBLIC",
    "decode_literal",
    "expected",
    "literal_values",
    "push_script",
    "rewriter",
    "run_inline",
    "run_stream",
    "split_scripts",
    "stream_of",
]
