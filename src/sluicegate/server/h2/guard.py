"""Flood defences of one HTTP/2 connection, sans-IO: a frame-header scan of the inbound bytes plus budgets.

Owns: ``FrameGuard.feed(data)``, run on every chunk a client sends before ``h2`` parses it. It follows the
frame boundaries (9-byte headers; payloads are skipped, never copied) and judges what ``h2`` does not
bound the way an edge must:

* the compressed size of one header block (HEADERS + its CONTINUATION frames) against ``[http2]
  max_header_bytes`` (a CONTINUATION flood never ends its block: h2 alone would take 64 frames of up to
  16 KiB); the decoded size is HPACK's ``max_header_list_size`` (the HPACK bomb), set by the protocol;
* control-frame floods: SETTINGS, PING, PRIORITY and empty DATA / CONTINUATION frames draw on one token
  bucket (``control_frame_rate``; WINDOW_UPDATE is not counted: a fast download makes a client send many),
  RST_STREAM frames on another (``reset_rate``; the protocol also charges it for each stream it refuses:
  Rapid Reset, CVE-2023-44487);
* whether a header block is open (the protocol arms the request-head deadline while one is).

A breach raises ``Calm`` (answered with GOAWAY ENHANCE_YOUR_CALM). Must not know about streams, the app
or sockets; the clock is passed in.
"""

from __future__ import annotations

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


class Calm(Exception):
    """The client broke a flood bound: the connection ends with GOAWAY(ENHANCE_YOUR_CALM)."""


class Budget:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second; ``take`` is False when empty."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now

    def take(self, now: float, n: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < n:
            return False
        self.tokens -= n
        return True


class FrameGuard:
    __slots__ = ("_block", "_head", "_preface", "_skip", "control", "in_block", "max_block", "resets")

    def __init__(self, max_block: int, reset_rate: float, control_rate: float, now: float) -> None:
        self.max_block = max_block
        self.resets = Budget(reset_rate, 2 * reset_rate, now)
        self.control = Budget(control_rate, 2 * control_rate, now)
        self._preface = len(PREFACE)  # client preface bytes still to pass (h2 checks their value)
        self._head = b""  # a partial frame header
        self._skip = 0  # payload bytes of the current frame still to pass
        self._block = 0  # compressed bytes of the open header block
        self.in_block = False

    def feed(self, data: bytes, now: float) -> None:
        """Account for ``data`` (any chunking). Raises ``Calm`` on a breach."""
        pos = 0
        end = len(data)
        if self._preface:
            step = min(self._preface, end)
            self._preface -= step
            pos = step
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            need = 9 - len(self._head)
            if end - pos < need:
                self._head += data[pos:]
                return
            if self._head:
                head = self._head + data[pos:pos + need]
                self._head = b""
            else:
                head = data[pos:pos + 9]
            pos += need
            self._frame(int.from_bytes(head[:3], "big"), head[3], head[4], now)

    def _frame(self, length: int, kind: int, flags: int, now: float) -> None:
        self._skip = length
        if kind in (HEADERS, CONTINUATION):
            if kind == HEADERS:
                self._block = 0
            elif length == 0 and not flags & END_HEADERS:
                self._charge_control(now)
            self._block += length
            if self._block > self.max_block:
                raise Calm(f"header block over {self.max_block} bytes (CONTINUATION flood)")
            self.in_block = not flags & END_HEADERS
        elif kind == DATA:
            if length == 0 and not flags & END_STREAM:
                self._charge_control(now)
        elif kind == RST_STREAM:
            self.charge_reset(now)
        elif kind in (SETTINGS, PING):
            if not flags & ACK:
                self._charge_control(now)
        elif kind == PRIORITY:
            self._charge_control(now)

    def _charge_control(self, now: float) -> None:
        if not self.control.take(now):
            raise Calm("control frame flood (SETTINGS/PING/PRIORITY/empty frames)")

    def charge_reset(self, now: float) -> None:
        """One stream reset by the client or refused by us."""
        if not self.resets.take(now):
            raise Calm("stream reset flood (Rapid Reset)")
