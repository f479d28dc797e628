"""html5lib-tests adapter for sluicegate's HTML engine: a documented checking surface.

Two functions, usable from outside the package:

* ``tokens(html, initial_state="Data state", last_start_tag=None)`` runs the bare tokenizer (no
  tree-builder simulation, exactly what html5lib's ``tokenizer/*.test`` files describe) and returns
  its output in that format: ``["StartTag", name, {attrs}]`` (+ ``True`` when self-closing),
  ``["EndTag", name]``, ``["Comment", data]``, ``["Character", data]`` (adjacent ones coalesced),
  ``["DOCTYPE", name, public_id, system_id, correctness]``. ``tokens_chunked`` does the same from a
  sequence of byte chunks, which is how chunk safety is checked.
* ``rewrite(chunks, *, origin, proxy)`` runs the full rewriter with sluicegate's rules (default
  ``HtmlSettings``: no injection snippets) mapping absolute URLs on ``origin`` to ``proxy``,
  consuming ``chunks`` lazily and yielding output as it is produced.

This module owns the *formatting* of tokens (entity decoding of text, DOCTYPE field parsing, the
comment-at-EOF rules); it must not change how the engine tokenizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from sluicegate.pipeline.html.charrefs import decode
from sluicegate.pipeline.html.lexer import (
    BOGUS,
    CDATA,
    CDATA_DATA,
    COMMENT_DATA,
    COMMENT_END,
    COMMENT_START,
    DATA,
    DOCTYPE,
    END,
    PLAINTEXT,
    RAWTEXT,
    RCDATA,
    SCRIPT,
    START,
    TEXT,
    Lexer,
    iter_attrs,
    self_closing,
)

__all__ = ["STATES", "infoset", "rewrite", "tokens", "tokens_chunked"]

STATES = {
    "Data state": DATA,
    "PLAINTEXT state": PLAINTEXT,
    "RCDATA state": RCDATA,
    "RAWTEXT state": RAWTEXT,
    "Script data state": SCRIPT,
    "CDATA section state": CDATA,
}
_CDATA_MODE = 99  # text mode of CDATA section characters (kept verbatim, NUL included)


def _stream(raw: bytes, *, nul: bool = True) -> str:
    s = raw.decode("utf-8", "surrogatepass")
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    if nul and "\0" in s:
        s = s.replace("\0", "\ufffd")
    return s


def _text(raw: bytes, mode: int) -> str:
    if mode == DATA:
        return decode(_stream(raw, nul=False), in_attribute=False)
    if mode == RCDATA:
        return decode(_stream(raw), in_attribute=False)
    return _stream(raw, nul=mode != _CDATA_MODE)


def tokens(html: str, initial_state: str = "Data state", last_start_tag: str | None = None) -> list[Any]:
    """Tokenize ``html`` (a whole input stream) into html5lib-tests tokens."""
    return tokens_chunked([html.encode("utf-8", "surrogatepass")], initial_state, last_start_tag)


def tokens_chunked(chunks: Iterable[bytes], initial_state: str = "Data state",
                   last_start_tag: str | None = None) -> list[Any]:
    """``tokens`` over UTF-8 input given as any sequence of byte chunks."""
    lexer = Lexer(state=STATES[initial_state],
                  last_start_tag=last_start_tag.encode() if last_start_tag is not None else None)
    out: list[Any] = []
    text: list[bytes] = []
    text_mode = [DATA]
    comment: list[bytes] = []
    comment_kind = [0]

    def char(s: str) -> None:
        if not s:
            return
        if out and out[-1][0] == "Character":
            out[-1][1] += s
        else:
            out.append(["Character", s])

    def flush() -> None:
        if text:
            char(_text(b"".join(text), text_mode[0]))
            text.clear()

    def handle(buf: bytes, tok: Any) -> None:
        kind = tok.kind
        piece = buf[tok.start : tok.end]
        if kind in (TEXT, CDATA_DATA):
            mode = tok.state if kind == TEXT else _CDATA_MODE
            if text and mode != text_mode[0]:
                flush()
            text_mode[0] = mode
            text.append(piece)
            return
        flush()
        if kind == START:
            attrs: dict[str, str] = {}
            for a in iter_attrs(buf, tok.astart, tok.aend):
                name = _stream(a.name)
                if name not in attrs:
                    value = buf[a.vstart : a.vend] if a.vstart >= 0 else b""
                    attrs[name] = decode(_stream(value), in_attribute=True)
            t: list[Any] = ["StartTag", _stream(tok.name), attrs]
            if self_closing(buf, tok.astart, tok.aend):
                t.append(True)
            out.append(t)
        elif kind == END:
            out.append(["EndTag", _stream(tok.name)])
        elif kind == COMMENT_START:
            comment.clear()
            comment_kind[0] = tok.state
            if tok.state == BOGUS:
                comment.append(piece[2:] if piece[1:2] in (b"!", b"/") else piece[1:])
        elif kind == COMMENT_DATA:
            comment.append(piece)
        elif kind == COMMENT_END:
            data = b"".join(comment)
            if tok.start == tok.end and comment_kind[0] != BOGUS:  # ended by end of input
                for tail in (b"--!", b"--", b"-"):
                    if data.endswith(tail):
                        data = data[: -len(tail)]
                        break
            out.append(["Comment", _stream(data)])
        elif kind == DOCTYPE:
            out.append(_doctype(piece))

    buf = b""
    for chunk in chunks:
        buf = buf + chunk if buf else chunk
        pos = 0
        while (tok := lexer.next(buf, pos, False)) is not None:
            handle(buf, tok)
            pos = tok.end
        buf = buf[pos:]
    pos = 0
    while (tok := lexer.next(buf, pos, True)) is not None:
        handle(buf, tok)
        pos = tok.end
    flush()
    return out


def infoset(toks: list[Any]) -> list[Any]:
    """Apply the spec's "coercing an HTML DOM into an infoset" tweaks (xmlViolation.test format):
    form feeds become spaces, noncharacters U+FFFE/U+FFFF become U+FFFD, ``--`` in comments ``- -``."""
    out: list[Any] = []
    for t in toks:
        if t[0] == "Character":
            s = t[1].replace("\f", " ")
            s = "".join("\ufffd" if (ord(c) & 0xFFFE) == 0xFFFE else c for c in s)
            out.append(["Character", s])
        elif t[0] == "Comment":
            s = t[1]
            while "--" in s:
                s = s.replace("--", "- -")
            out.append(["Comment", s])
        else:
            out.append(t)
    return out


_WS = "\t\n\f "
_QUIRKS_AT_GT = frozenset(("before_name", "after_pub_kw", "before_pub", "pub", "after_sys_kw", "before_sys", "sys"))


def _lower(c: str) -> str:
    return c.lower() if "A" <= c <= "Z" else c


def _doctype(raw: bytes) -> list[Any]:
    """Fields of a DOCTYPE token, following the spec's DOCTYPE states (rare, so a plain loop)."""
    closed = raw.endswith(b">")
    s = _stream(raw[9:-1] if closed else raw[9:])
    name: str | None = None
    pub: str | None = None
    sys_id: str | None = None
    quirks = False
    state = "before_name"
    quote = ""
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        i += 1
        ws = c in _WS
        if state == "before_name":
            if not ws:
                name, state = _lower(c), "name"
        elif state == "name":
            if ws:
                state = "after_name"
            else:
                name = (name or "") + _lower(c)
        elif state == "after_name":
            if ws:
                continue
            kw = s[i - 1 : i + 5]
            if kw.isascii() and kw.upper() in ("PUBLIC", "SYSTEM"):
                state = "after_pub_kw" if kw.upper() == "PUBLIC" else "after_sys_kw"
                i += 5
            else:
                quirks, state = True, "bogus"
        elif state in ("after_pub_kw", "before_pub", "after_pub", "between", "after_sys_kw", "before_sys"):
            if ws:
                if state == "after_pub_kw":
                    state = "before_pub"
                elif state == "after_pub":
                    state = "between"
                elif state == "after_sys_kw":
                    state = "before_sys"
            elif c in "\"'":
                quote = c
                if state in ("after_pub_kw", "before_pub"):
                    pub, state = "", "pub"
                else:
                    sys_id, state = "", "sys"
            else:
                quirks, state = True, "bogus"
        elif state == "pub":
            if c == quote:
                state = "after_pub"
            else:
                pub = (pub or "") + c
        elif state == "sys":
            if c == quote:
                state = "after_sys"
            else:
                sys_id = (sys_id or "") + c
        elif state == "after_sys" and not ws:
            state = "bogus"
    if closed:
        quirks = quirks or state in _QUIRKS_AT_GT
    elif state != "bogus":
        quirks = True
    return ["DOCTYPE", name, pub, sys_id, not quirks]


def rewrite(chunks: Iterable[bytes], *, origin: str, proxy: str) -> Iterator[bytes]:
    """Run the full rewriter with sluicegate's rules, mapping ``origin`` URLs to ``proxy``."""
    from sluicegate.config.html import HtmlSettings
    from sluicegate.config.origin import Origin
    from sluicegate.pipeline.hosts import OriginMatcher
    from sluicegate.pipeline.html import build_html_processor

    parts = urlsplit(proxy)
    rewriter = OriginMatcher(Origin.parse(origin)).for_request(parts.scheme or "https", parts.netloc)
    proc = build_html_processor(rewriter, HtmlSettings())
    for chunk in chunks:
        out = proc.feed(chunk)
        if out:
            yield out
    out = proc.finish()
    if out:
        yield out
