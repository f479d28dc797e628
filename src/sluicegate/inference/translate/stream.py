"""Streaming translation core: an incremental SSE decoder, per-protocol encoders, and the stage pipeline.

Sans-IO. ``StreamTranslator.feed(bytes) -> bytes`` decodes complete upstream events (an event split across
any number of reads, at any byte, decodes the same), hands each ``(event, payload)`` through a chain of
stages (each stage maps one protocol's events to another's), and encodes what comes out in the client's
SSE framing. ``finish()`` ends the stream (upstream EOF); ``fail(message)`` ends it with the client
protocol's error event and a clean terminator. The decoder's buffer is bounded by ``max_event_bytes``; an
event over it is a ``StreamOverflow``. Since every upstream event is decoded here anyway, the provider's
own usage figures (``usage``) and whether it sent an error event (``saw_error``) are read on the way, from
the upstream objects before any stage (the relay needs no second tap). Must not know about sockets,
routing or request bodies.

Per event, the costs are one C ``find`` for the boundary, then one of two paths:

* the fast path for text and tool-argument deltas (most events of a stream): the upstream event's exact
  common shape is matched by one compiled regex (``ANTHROPIC_TEXT`` / ``CHAT_TEXT``, ``ANTHROPIC_ARGS`` /
  ``CHAT_ARGS``), which also validates the JSON string it captures; when every stage's state allows it
  (``passes_text`` / ``text_frame``, ``passes_args`` / ``args_frame``), that still-escaped string is spliced
  into the last stage's prebuilt client frame: no JSON decode, no dicts, no JSON encode. The frame is carried
  as ``(RAW, text)``. The matched block's bytes before and after the string are then learned: a later block
  that is the same around a valid JSON string (bytes compares + one bytes regex, strict UTF-8) is that event
  again with another string, so it skips even the SSE line parse and the regex over the whole event;
* every other event: a split-free parse of the usual one-``data``-line block, one JSON decode (the C scanner
  directly: ``json.loads`` adds two regex passes and a few checks), the stages' dict work, and one JSON
  encode (one C encoder made once, not one per call as ``JSONEncoder.encode`` does).

Both paths give the same client events (tests compare them); only the escaping may differ (a spliced string
keeps the provider's escaping, valid JSON either way). All events decoded from one upstream read leave in
one ``bytes`` (one write); none is ever held back waiting for more input.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii as _esc_ascii
from typing import Any, Protocol

from sluicegate.inference.sse import Usage, apply_usage

RAW = "\x00raw"  # event name of an already-encoded client frame (a stage's text-delta template)
DONE = "[DONE]"  # the chat-completions terminator, carried through stages as a payload
PING = ": ping"  # a keep-alive (Anthropic ping, an SSE comment): a comment where the client has no ping event
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r|\n\r\n")
_LINES = re.compile(rb"\r\n|\r|\n")
# ASCII output: the C encoder's ASCII path is faster, and escapes are decoded the same by every client.
_dumps_slow = json.JSONEncoder(separators=(",", ":")).encode


def _make_dumps() -> Callable[[Any], str]:
    """``JSONEncoder(separators=(",", ":")).encode`` without building a C encoder on every call."""
    from json import encoder as _enc

    make = getattr(_enc, "c_make_encoder", None)
    if make is None:  # no C accelerator: the plain encoder
        return _dumps_slow

    def _default(obj: Any) -> Any:
        raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")

    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan)
    chunks = make(None, _default, _enc.encode_basestring_ascii, None, ":", ",", False, False, True)

    def dumps(obj: Any) -> str:
        if isinstance(obj, str):
            return _dumps_slow(obj)  # (the C encoder expects a container at the top level)
        return "".join(chunks(obj, 0))

    return dumps


_dumps = _make_dumps()
dumps_ascii = _dumps  # the encoder every client frame is built with (compact, ASCII)


def escape(text: str) -> str:
    """``text`` as the inside of a JSON string literal (the C escaper, without the quotes)."""
    return _esc_ascii(text)[1:-1]


# The contents of a JSON string literal, validated: any character but '"', '\\' and controls, or an escape.
JSON_STR = r'[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*'
# An Anthropic text delta exactly as the Messages API sends it (anything else takes the general path).
ANTHROPIC_TEXT = re.compile(
    r'\{"type":"content_block_delta","index":\d+,"delta":\{"type":"text_delta","text":"(' + JSON_STR + r')"\}\}')
# A chat-completions chunk carrying only text for choice 0: scalar top-level fields (id, object, created,
# model, system_fingerprint, service_tier, obfuscation, "usage":null, ...; never an "error" or a "type" (the
# error tap reads those) and never a usage object) around one choice whose delta is the content (an optional
# repeated role), no finish reason.
_SCALAR_FIELD = r'"(?!error"|type")[A-Za-z_]+":(?:"[^"\\\x00-\x1f]*"|-?\d+|null|true|false)'
CHAT_TEXT = re.compile(
    r'\{(?:' + _SCALAR_FIELD + r',)*"choices":\[\{"index":0,"delta":\{(?:"role":"assistant",)?"content":"('
    + JSON_STR + r')"\}(?:,"logprobs":null)?,"finish_reason":null\}\](?:,' + _SCALAR_FIELD + r')*\}')
_JSON_STR_BYTES = re.compile(JSON_STR.encode())
# Tool-call argument deltas: Anthropic input_json_delta, and a chat chunk carrying only one call's arguments.
ANTHROPIC_ARGS = re.compile(
    r'\{"type":"content_block_delta","index":(\d+),"delta":\{"type":"input_json_delta","partial_json":"('
    + JSON_STR + r')"\}\}')
CHAT_ARGS = re.compile(
    r'\{(?:' + _SCALAR_FIELD + r',)*"choices":\[\{"index":0,"delta":\{"tool_calls":\[\{"index":(\d+),'
    r'"function":\{"arguments":"(' + JSON_STR + r')"\}\}\]\}(?:,"logprobs":null)?,"finish_reason":null\}\]'
    r'(?:,' + _SCALAR_FIELD + r')*\}')
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads_str(pieces: list[str]) -> str:
    """The text of JSON-escaped string pieces (each a valid string literal's inside), decoded once."""
    if not pieces:
        return ""
    text, _ = _scan('"' + "".join(pieces) + '"', 0)
    return text  # type: ignore[no-any-return]


def _loads(text: str) -> Any:
    """``json.loads`` for the usual compact event payload through the C scanner directly; anything else
    (leading/trailing whitespace, invalid JSON) is left to ``json.loads``, which decides or raises."""
    try:
        obj, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return obj

Event = tuple[str, Any]  # (SSE event name or "", decoded JSON payload, DONE or PING)


class StreamOverflow(ValueError):
    """One upstream event is larger than the translator's bound."""


class Stage(Protocol):
    """Maps one protocol's events to another's. Appends to ``out``; never raises on unknown events."""

    dropped: set[str]  # what this stage had to drop (reported in x-sluicegate-dropped)
    closed: bool  # the client stream has been terminated by this stage

    def event(self, name: str, obj: Any, out: list[Event]) -> None: ...

    def passes_text(self) -> bool:
        """As a stage before the last: a text delta now maps to exactly one text delta and nothing else."""
        ...

    def text_frame(self, esc: str) -> str | None:
        """As the last stage: the client frame for a text delta whose JSON-escaped text is ``esc`` ("" when
        nothing is to be sent), its state updated as ``event`` would; None when the state needs ``event``."""
        ...

    def passes_args(self, index: int) -> int | None:
        """As a stage before the last: the next protocol's tool-call index a tool-arguments delta at upstream
        ``index`` maps to (exactly one delta and nothing else), or None when the state needs ``event``."""
        ...

    def args_frame(self, index: int, esc: str) -> str | None:
        """As the last stage: the client frame for a tool-arguments delta (tool call / block ``index`` of its
        input protocol, JSON-escaped arguments ``esc``); "" when nothing is sent; None when ``event`` must."""
        ...

    def end(self, out: list[Event]) -> None: ...

    def fail(self, message: str, code: str, out: list[Event]) -> None: ...


class SseDecoder:
    """Incremental SSE parser. ``feed`` returns the complete events; an incomplete one is held (bounded)."""

    __slots__ = ("_buf", "max_event_bytes")

    def __init__(self, max_event_bytes: int = 1024 * 1024) -> None:
        self._buf = b""
        self.max_event_bytes = max_event_bytes

    def blocks(self, data: bytes) -> list[bytes]:
        """The complete (non-empty) event blocks ``data`` ends, without their blank-line boundary."""
        held = len(self._buf)
        if (not held and len(data) > 2 and data.find(b"\n\n") == len(data) - 2 and b"\r" not in data):
            # The usual read: exactly one LF-framed event (one C find, one C scan).
            return [data[:-2]]
        buf = self._buf + data if held else data
        out: list[bytes] = []
        start = 0
        pos = max(0, held - 3)  # a boundary may straddle the previous read
        lf_only = b"\r" not in buf  # the usual framing: one C find per boundary instead of the regex
        while True:
            if lf_only:
                end = buf.find(b"\n\n", pos)
                if end < 0:
                    break
                nxt = end + 2
            else:
                m = _BOUNDARY.search(buf, pos)
                if m is None:
                    break
                end, nxt = m.start(), m.end()
            if end > start:
                out.append(buf[start:end])
            start = pos = nxt
        rest = buf[start:] if start else buf
        if len(rest) > self.max_event_bytes:
            self._buf = b""
            raise StreamOverflow(f"an upstream event exceeds {self.max_event_bytes} bytes")
        self._buf = rest
        return out

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        """The complete events ``data`` ends, as ``(event name, data)``; an incomplete one is held."""
        return [ev for block in self.blocks(data) if (ev := parse_block(block)) is not None]

    def finish_block(self) -> bytes:
        """Whatever is left without a final blank line (a complete last event is tolerated at EOF)."""
        rest, self._buf = self._buf, b""
        return rest if rest.strip() else b""

    def finish(self) -> list[tuple[str, str]]:
        rest = self.finish_block()
        ev = parse_block(rest) if rest else None
        return [ev] if ev is not None else []


def parse_block(block: bytes) -> tuple[str, str] | None:
    """One event block as ``(event name, data)``; a keep-alive comment as ``("", PING)``; else None."""
    ev = _parse_block(block)
    if ev is None and block[:1] == b":":
        return "", PING  # a keep-alive comment: the client gets its own kind
    return ev


def _parse_block(block: bytes) -> tuple[str, str] | None:
    # The usual shapes, without a split: "data: X" or "event: N\ndata: X", LF only, one data line.
    if b"\r" not in block:
        if block[:6] == b"data: ":
            if b"\n" not in block:
                return "", block[6:].decode("utf-8", "replace")
        elif block[:7] == b"event: ":
            nl = block.find(b"\n")
            if nl > 0 and block[nl + 1:nl + 7] == b"data: " and block.find(b"\n", nl + 1) < 0:
                return block[7:nl].decode("utf-8", "replace"), block[nl + 7:].decode("utf-8", "replace")
    event = ""
    data: list[bytes] = []
    for line in _LINES.split(block):
        if not line or line[:1] == b":":
            continue  # comments (keep-alives) are skipped
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    if not data:
        return None
    return event, b"\n".join(data).decode("utf-8", "replace")


def _chat_frame(name: str, obj: Any) -> str:
    if name is RAW:
        return obj  # type: ignore[no-any-return]
    if obj is DONE:
        return "data: [DONE]\n\n"
    if obj is PING:
        return ": ping\n\n"
    return "data: " + _dumps(obj) + "\n\n"


def _named_frame(name: str, obj: Any) -> str:
    if name is RAW:
        return obj  # type: ignore[no-any-return]
    if obj is PING:
        return ": ping\n\n"
    if obj is DONE:
        return ""
    return "event: " + name + "\ndata: " + _dumps(obj) + "\n\n"


def encode_chat(events: Sequence[Event]) -> bytes:
    """OpenAI framing: ``data: {json}`` per chunk, ``data: [DONE]`` at the end, keep-alives as comments."""
    return "".join([_chat_frame(name, obj) for name, obj in events]).encode()


def encode_named(events: Sequence[Event]) -> bytes:
    """Anthropic / Responses framing: ``event: name`` + ``data: {json}``; keep-alives as comments."""
    return "".join([_named_frame(name, obj) for name, obj in events]).encode()


_Shape = tuple[bytes, bytes, Callable[[str], "str | None"]]  # (head, tail, the frame for the string)
_Match = Callable[[str], "re.Match[str] | None"]
# (C-find gate, full pattern) for text deltas, then for tool-argument deltas, per upstream protocol.
_FAST_CHAT: tuple[tuple[str, _Match], ...] = (('"content":"', CHAT_TEXT.fullmatch),
                                              ('"arguments":"', CHAT_ARGS.fullmatch))
_FAST_ANTHROPIC: tuple[tuple[str, _Match], ...] = (('"text_delta"', ANTHROPIC_TEXT.fullmatch),
                                                   ('"input_json_delta"', ANTHROPIC_ARGS.fullmatch))


class StreamTranslator:
    """Upstream SSE bytes in, client SSE bytes out, through ``stages``. Bounded; any read split."""

    __slots__ = ("_args", "_decoder", "_encode", "_fast", "_learned", "_shapes", "_stages", "_text",
                 "_upstream_chat", "done", "events_in", "events_out", "saw_error", "usage")

    def __init__(self, stages: Sequence[Stage], upstream_chat: bool, client_chat: bool,
                 max_event_bytes: int = 1024 * 1024, fast: bool = True) -> None:
        self._decoder = SseDecoder(max_event_bytes)
        self._stages = list(stages)
        self._upstream_chat = upstream_chat
        self._encode = encode_chat if client_chat else encode_named
        # The fast path's patterns (``fast=False``: every event through the stages, for comparison):
        # (C-find gate, full pattern) for text deltas, then for tool-argument deltas.
        self._fast = (_FAST_CHAT if upstream_chat else _FAST_ANTHROPIC) if fast else ()
        # The learned block shapes (bytes before / after the escaped string, and where the string goes): the
        # last text delta's and the last tool-arguments delta's (the call index is part of its bytes).
        self._learned: list[_Shape | None] = [None, None]  # [text delta, tool-arguments delta]
        self._shapes: list[_Shape] = []  # the learned ones
        one = len(self._stages) == 1
        self._text: Callable[[str], str | None] = self._stages[0].text_frame if one else self._chain_text
        self._args: Callable[[int, str], str | None] = self._stages[0].args_frame if one else self._chain_args
        self.done = False  # the client stream has been terminated (by the upstream, finish or fail)
        self.events_in = 0
        self.events_out = 0
        self.usage = Usage()  # the provider's own figures, from its events
        self.saw_error = False  # the provider sent an error event

    @property
    def dropped(self) -> set[str]:
        out: set[str] = set()
        for st in self._stages:
            out |= st.dropped
        return out

    def _chain_text(self, esc: str) -> str | None:
        stages = self._stages
        for st in stages[:-1]:
            if not st.passes_text():
                return None
        return stages[-1].text_frame(esc)

    def _chain_args(self, index: int, esc: str) -> str | None:
        stages = self._stages
        for st in stages[:-1]:
            nxt = st.passes_args(index)
            if nxt is None:
                return None
            index = nxt
        return stages[-1].args_frame(index, esc)

    def _run(self, name: str, obj: Any, out: list[Event]) -> None:
        """One decoded upstream event through every stage, the client's events appended to ``out``."""
        stages = self._stages
        if len(stages) == 1:
            stages[0].event(name, obj, out)
            return
        events: list[Event] = [(name, obj)]
        for st in stages[:-1]:
            nxt: list[Event] = []
            for n, o in events:
                st.event(n, o, nxt)
            events = nxt
        last = stages[-1]
        for n, o in events:
            last.event(n, o, out)

    def _end(self) -> list[Event]:
        pending: list[Event] = []
        for st in self._stages:
            nxt: list[Event] = []
            for name, obj in pending:
                st.event(name, obj, nxt)
            st.end(nxt)
            pending = nxt
        return pending

    def _decode(self, name: str, text: str) -> Any:
        """The event's payload (DONE / PING kept as such), the provider's usage and errors noted; None when it
        is not JSON (nothing any protocol defines: skipped like an unknown event)."""
        if text is PING:
            return PING
        if text == DONE and self._upstream_chat:
            return DONE
        try:
            obj = _loads(text)
        except ValueError:
            return None
        if '"usage"' in text:
            apply_usage(self.usage, obj)
        if "error" in text and (name == "error" or (isinstance(obj, dict) and (
                "error" in obj or obj.get("type") == "error"))):
            self.saw_error = True
        return obj

    def _translate(self, blocks: list[bytes]) -> list[Event]:
        out: list[Event] = []
        shapes, fast = self._shapes, self._fast
        run = self._stages[0].event if len(self._stages) == 1 else self._run
        n = 0
        for block in blocks:
            n += 1
            frame: str | None = None
            # A learned shape: the same bytes around a valid JSON string is the same event with another string.
            for head, tail, where in shapes:
                if block.startswith(head) and block.endswith(tail) and len(block) >= len(head) + len(tail):
                    mid = block[len(head):len(block) - len(tail)]
                    if _JSON_STR_BYTES.fullmatch(mid) is not None:
                        try:
                            frame = where(mid.decode())
                        except UnicodeDecodeError:
                            pass  # not UTF-8: the general path decodes it as it always has
                    break
            if frame is not None:
                if frame:
                    out.append((RAW, frame))
                continue
            ev = _parse_block(block)
            if ev is None:
                if block[:1] != b":":
                    n -= 1
                    continue
                ev = ("", PING)  # a keep-alive comment: the client gets its own kind
            name, text = ev
            # (The stream's first event — message_start, the role chunk — finds no stage started: not tried.)
            if fast and (fast[0][0] in text or fast[1][0] in text) and name != "error" and (n > 1 or self.events_in):
                frame = self._match(block, text)
                if frame is not None:
                    shapes = self._shapes  # (perhaps just learned: the rest of this read uses it)
                    if frame:
                        out.append((RAW, frame))
                    continue
            obj = self._decode(name, text)
            if obj is not None:
                run(name, obj, out)
        self.events_in += n
        return out

    def _match(self, block: bytes, text: str) -> str | None:
        """The fast path's frame for an event of a known shape (learning its block shape), else None."""
        (tgate, tmatch), (agate, amatch) = self._fast
        if tgate in text:
            m = tmatch(text)
            if m is not None:
                frame = self._text(m.group(1))
                if frame is not None:
                    self._learn(0, block, text, m, 1, self._text)
                return frame
        if agate in text:
            m = amatch(text)
            if m is not None:
                where = functools.partial(self._args, int(m.group(1)))
                frame = where(m.group(2))
                if frame is not None:
                    self._learn(1, block, text, m, 2, where)
                return frame
        return None

    def _learn(self, slot: int, block: bytes, text: str, m: re.Match[str], group: int,
               where: Callable[[str], str | None]) -> None:
        """Remember a matched block's bytes before and after its string: a later block that is the same around
        a valid JSON string is then the same event shape (the pattern matched this one whole)."""
        data = text.encode()
        if b"\r" in block or not block.endswith(data):
            return  # unusual framing (or bytes the decoder replaced): not learned
        head = block[:len(block) - len(data)] + text[:m.start(group)].encode()
        learned = self._learned
        learned[slot] = (head, text[m.end(group):].encode(), where)
        self._shapes = [shape for shape in learned if shape is not None]

    def feed(self, data: bytes) -> bytes:
        if self.done or not data:
            return b""
        blocks = self._decoder.blocks(data)
        if not blocks:
            return b""
        out = self._translate(blocks)
        self.events_out += len(out)
        if self._stages[-1].closed:
            self.done = True
        if len(out) == 1 and out[0][0] is RAW:
            frame: str = out[0][1]
            return frame.encode()  # the usual result: one text delta's frame
        return self._encode(out)

    def finish(self) -> bytes:
        """Upstream EOF: translate an unterminated last event, then end the client stream."""
        if self.done:
            return b""
        rest = self._decoder.finish_block()
        out = self._translate([rest] if rest else [])
        if not self._stages[-1].closed:
            out += self._end()
        self.done = True
        self.events_out += len(out)
        return self._encode(out)

    def fail(self, message: str, code: str = "proxy_stream_error") -> bytes:
        """A mid-stream failure: the client protocol's error event, then its clean end."""
        if self.done:
            return b""
        self.done = True
        out: list[Event] = []
        self._stages[-1].fail(message, code, out)
        self.events_out += len(out)
        return self._encode(out)
