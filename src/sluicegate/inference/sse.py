"""The side tap on relayed bytes: event-boundary tracking and usage extraction, never a transformer.

Sans-IO. ``feed(data) -> data`` returns its input object unchanged (the relay writes exactly what the
upstream sent); on the side it remembers whether the stream currently rests on an SSE event boundary (so
a mid-stream error event can be framed correctly) and pulls token usage out of the terminal events:
OpenAI chunks with ``usage``, Anthropic ``message_start`` / ``message_delta``, Responses
``response.completed``. Parsing is incremental across any read split and bounded by ``max_event_bytes``;
only events whose bytes mention ``usage`` are decoded at all. Must not know about sockets or routing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_LINE_SPLIT = re.compile(rb"\r\n|\r|\n")
_BOUNDARIES = (b"\n\n", b"\r\r", b"\r\n\r\n", b"\n\r\n")
_USAGE_OBJ = re.compile(rb'"usage"\s*:\s*\{')


@dataclass(slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def apply_usage(usage: Usage, obj: object) -> None:
    """Merge whatever usage one decoded event (or a whole JSON answer) carries into ``usage``."""
    if not isinstance(obj, dict):
        return
    typ = obj.get("type")
    if typ == "message_start" and isinstance(obj.get("message"), dict):
        u = obj["message"].get("usage")
    elif typ in ("response.completed", "response.incomplete", "response.failed") and isinstance(
        obj.get("response"), dict
    ):
        u = obj["response"].get("usage")
    else:
        u = obj.get("usage")
    if not isinstance(u, dict):
        return
    # OpenAI chat/completions/embeddings: prompt_tokens / completion_tokens. Anthropic and Responses:
    # input_tokens / output_tokens (Anthropic message_delta output_tokens is cumulative, so last wins).
    for key in ("prompt_tokens", "input_tokens"):
        v = _int(u.get(key))
        if v is not None:
            usage.input_tokens = v
    for key in ("completion_tokens", "output_tokens"):
        v = _int(u.get(key))
        if v is not None:
            usage.output_tokens = v
    v = _int(u.get("cache_read_input_tokens"))
    if v is None and isinstance(u.get("prompt_tokens_details"), dict):
        v = _int(u["prompt_tokens_details"].get("cached_tokens"))
    if v is None and isinstance(u.get("input_tokens_details"), dict):
        v = _int(u["input_tokens_details"].get("cached_tokens"))
    if v is not None:
        usage.cache_read_tokens = v
    v = _int(u.get("cache_creation_input_tokens"))
    if v is not None:
        usage.cache_creation_tokens = v


def parse_events(block: bytes) -> list[tuple[str, str]]:
    """Parse complete SSE events into ``(event, data)`` pairs (multi-line data joined with ``\\n``)."""
    out: list[tuple[str, str]] = []
    event = ""
    data: list[bytes] = []
    for line in _LINE_SPLIT.split(block):
        if not line:
            if data:
                out.append((event, b"\n".join(data).decode("utf-8", "replace")))
            event, data = "", []
            continue
        if line[:1] == b":":
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if data:  # a block always ends on a boundary; kept for direct callers
        out.append((event, b"\n".join(data).decode("utf-8", "replace")))
    return out


class SseTap:
    """Watches an SSE byte stream. ``feed`` returns its argument; state is in attributes."""

    __slots__ = ("_pending", "_skipping", "events_seen", "max_event_bytes", "overflowed", "saw_error",
                 "usage")

    def __init__(self, max_event_bytes: int = 1024 * 1024) -> None:
        self.max_event_bytes = max_event_bytes
        self.usage = Usage()
        self._pending = b""  # bytes after the last complete event boundary
        self._skipping = False  # inside an event larger than the cap: drop until the next boundary
        self.overflowed = 0  # events skipped for size
        self.events_seen = 0  # complete blocks processed (approximate event count)
        self.saw_error = False  # an upstream error event passed through

    @property
    def pending_bytes(self) -> int:
        """Length of the incomplete event at the end of what was fed (0 while skipping an oversized one)."""
        return len(self._pending)

    @property
    def skipping(self) -> bool:
        return self._skipping

    @property
    def at_boundary(self) -> bool:
        """True when the relayed bytes so far end exactly after a complete event (or nothing yet)."""
        return not self._pending and not self._skipping

    def closing_bytes(self) -> bytes:
        """What to write before an injected event so it starts on a boundary (extra blank lines are inert)."""
        return b"" if self.at_boundary else b"\n\n"

    def feed(self, data: bytes) -> bytes:
        if data:
            self._take(data)
        return data

    def split(self, data: bytes) -> bytes:
        """Feed ``data``; return what may be relayed now: the held bytes plus ``data`` up to the last complete
        event boundary. The incomplete event stays held (``pending_bytes``) until its end arrives; while an
        oversized event is being skipped everything passes straight through. Concatenating every return
        value (and the held rest at EOF, ``held()``) gives exactly the bytes fed, in order."""
        if not data:
            return data
        if not self._pending and not self._skipping and data.endswith(_BOUNDARIES):
            # The usual read: whole events, nothing held before or after (``_take`` would do the same, slower).
            self.events_seen += 1
            at = data.find(b'"usage"')
            if (at >= 0 and _USAGE_OBJ.search(data, at) is not None) or b"error" in data:
                self._scan(data)
            return data
        buf = self._take(data)
        keep = len(self._pending)
        return buf[:-keep] if keep else buf

    def held(self) -> bytes:
        """The bytes of the incomplete event ``split`` is holding back."""
        return self._pending

    def _take(self, data: bytes) -> bytes:
        pending = self._pending
        buf = pending + data if pending else data
        size = len(buf)
        if buf.endswith(_BOUNDARIES):  # the common case: a read ends on an event boundary
            end = size
        else:
            start = max(0, len(pending) - 3)  # a boundary may straddle the previous read
            end = -1
            for sep in _BOUNDARIES:
                pos = buf.rfind(sep, start)
                if pos >= 0 and pos + len(sep) > end:
                    end = pos + len(sep)
            if end < 0:
                if size > self.max_event_bytes:
                    self._skipping = True
                    self.overflowed += 1
                    self._pending = b""
                else:
                    self._pending = buf
                return buf
        if end == size:
            block, rest = buf, b""
        else:
            block, rest = buf[:end], buf[end:]
        if self._skipping:
            # The oversized event ends at the first boundary in this block; drop up to it.
            first = min((p + len(s) for s in _BOUNDARIES if (p := block.find(s)) >= 0), default=end)
            block = block[first:]
            self._skipping = False
        if len(rest) > self.max_event_bytes:
            self._pending = b""
            self._skipping = True
            self.overflowed += 1
        else:
            self._pending = rest
        if block:
            self.events_seen += 1
            # Cheap C-level filters: only events that carry a usage object or an error are decoded.
            # (OpenAI streams with include_usage carry ``"usage":null`` in every chunk; those are skipped.)
            # The regex starts at the first mention, not at the block's start (an 8 KiB delta is scanned once).
            at = block.find(b'"usage"')
            if (at >= 0 and _USAGE_OBJ.search(block, at) is not None) or b"error" in block:
                self._scan(block)
        return buf

    def _scan(self, block: bytes) -> None:
        if b"error" in block:  # rare: look at every event (error events carry no usage object)
            self._decode(block)
            return
        # Only the events holding a usage object are cut out and decoded: a read that carries a whole
        # stream at once (fast upstream, or catching up) costs one regex pass, not ~30 JSON decodes.
        done = 0
        for match in _USAGE_OBJ.finditer(block):
            pos = match.start()
            if pos < done:
                continue  # a second usage object inside an event already decoded
            start = max((p + len(sep) for sep in _BOUNDARIES if (p := block.rfind(sep, done, pos)) >= 0),
                        default=done)
            done = min((p + len(sep) for sep in _BOUNDARIES if (p := block.find(sep, pos)) >= 0),
                       default=len(block))
            self._decode(block[start:done])

    def _decode(self, block: bytes) -> None:
        for event, data in parse_events(block):
            if event == "error" or data.startswith('{"error"') or '"type":"error"' in data[:40]:
                self.saw_error = True
            if '"usage"' not in data or len(data) > self.max_event_bytes:
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            apply_usage(self.usage, obj)


class JsonTap:
    """Usage from a non-streamed JSON answer: buffers up to a cap, parses once at the end."""

    __slots__ = ("_buf", "_size", "max_bytes", "usage")

    def __init__(self, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._buf: list[bytes] = []
        self._size = 0
        self.usage = Usage()

    def feed(self, data: bytes) -> bytes:
        if self._size <= self.max_bytes:
            self._buf.append(data)
            self._size += len(data)
        return data

    def finish(self) -> Usage:
        if 0 < self._size <= self.max_bytes:
            try:
                apply_usage(self.usage, json.loads(b"".join(self._buf)))
            except ValueError:
                pass
        self._buf = []
        return self.usage
