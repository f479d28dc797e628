"""The dispatcher: ``HtmlRewriter``, the main loop that walks the input and hands units to handlers.

Theory of operation. ``HtmlRewriter.feed`` appends input to one buffer and walks it with the
``lexer``. Every token's bytes are emitted exactly as received unless a handler changed them, so
output equals input when nothing matches. Between tokens that no handler can care about, the fast
tag scanner (``scanner``: one compiled regex interpreted, the byte loop ``scan_boring`` compiled)
skips text and whole tags; the plan it follows comes from the registry (``registry``: stop names,
watched end tags, needles). Foreign content, pending element-end actions and content observers
switch to token-by-token mode, except that a whole ``<svg>``/``<math>`` element that cannot change the
tree simulator's outcome is one run (``scanner.foreign_end``) and a whole ``<script>``/``<style>``
whose start tag holds no needle goes straight from the buffer to its text handlers
(``_raw_body``, ``scanner.raw_text_end``). With several needles the scan stops at the nearest
(``needles.NeedleScan``). A plain start tag that holds the raw hook's needle (and no other
handler's) can be handed to the byte-level ``raw`` hook instead of going through
``Token``/``Element`` (``units``); the hook may decline, and then the tag takes the full path.

Bounded memory: the buffer holds at most the current incomplete token. A tag still open after
``max_tag_bytes`` is streamed out (``skipper.TagSkipper`` follows its structure; its bytes go
through the long-tag filter when one is set, which may refuse it) and a tag that long is never
handed to handlers even when it arrived whole, so the output does not depend on chunking.
Character data that no text handler collects goes through the text filter when one is set; the
fast scan stops short of the filter's needles for it. Raw-text bodies with text handlers are
collected by ``bodies.TextBodies`` (bounded by ``max_text_bytes``). Output goes through
``output.OutputQueue`` (ordered, with ``Deferred`` slots).

Owns: the order in which units are dispatched and serialized; element-end actions (content
appended to or after an element, removal). Must not know: sluicegate's rules, hosts,
configuration models, I/O.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Final

from sluicegate.pipeline.bytescan import is_alpha
from sluicegate.pipeline.html.bodies import FINISHED, TextBodies
from sluicegate.pipeline.html.lexer import DATA, END, START, TEXT, Lexer, Token
from sluicegate.pipeline.html.needles import only_inside
from sluicegate.pipeline.html.output import OutputQueue
from sluicegate.pipeline.html.registry import HandlerRegistry
from sluicegate.pipeline.html.scanner import (
    COMPILED_SCAN,
    foreign_end,
    has_needle,
    past_last_gt,
    raw_text_end,
    scan_boring,
    tag_span,
    tag_span_re,
)
from sluicegate.pipeline.html.skipper import TagSkipper
from sluicegate.pipeline.html.treesim import RAW_STATE, SCRIPT, TreeSim
from sluicegate.pipeline.html.units import DocumentEnd, Element, EndTag, RawTagHandler, TextChunk, TextFilter

if TYPE_CHECKING:
    pass

log = logging.getLogger("sluicegate.html")

VOID: Final = frozenset(
    b"area base basefont bgsound br col embed frame hr image img input keygen link meta param source "
    b"track wbr".split()
)


class _Pending:
    __slots__ = ("after", "append", "depth", "name", "removed")

    def __init__(self, name: bytes, append: list[bytes], after: list[bytes], removed: bool) -> None:
        self.name = name
        self.append = append
        self.after = after
        self.removed = removed
        self.depth = 0


class HtmlRewriter(HandlerRegistry):
    """Sans-IO HTML rewriter. Register handlers (``registry``), then ``feed``/``finish``."""

    def __init__(self, *, max_tag_bytes: int = 64 * 1024, max_text_bytes: int = 8 * 1024 * 1024) -> None:
        super().__init__(max_tag_bytes=max_tag_bytes, max_text_bytes=max_text_bytes)
        self._sim = TreeSim()
        self._lexer = Lexer(sim=self._sim)
        self._buf = b""
        self._final = False
        self._pending: list[_Pending] = []
        self._out = OutputQueue()
        self._bodies = TextBodies(self, self._out)
        self._skipper: TagSkipper | None = None
        self._skip_name = b""
        self._low = b""
        self._buf_run = b""
        self._lt: TextFilter | None = None
        self._tf_pending = False

    def _emit_long(self, data: bytes) -> None:
        """Bytes of an over-long tag, through the long-tag filter when one is set."""
        lt = self._lt
        self._out.emit(lt.feed(data) if lt is not None else data)

    def _lt_end(self) -> None:
        lt = self._lt
        if lt is not None:
            self._lt = None
            self._out.emit(lt.finish())

    def _tf_flush(self) -> None:
        tf = self._tf
        if tf is not None and self._tf_pending:
            self._tf_pending = False
            self._out.emit(tf.finish())

    @property
    def held_bytes(self) -> int:
        """Bytes of output held behind unresolved ``Deferred`` slots."""
        return self._out.held

    # -- the main loop ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        if data:
            self._buf = self._buf + data if self._buf else data
            self._run()
        return self._out.take()

    def finish(self) -> bytes:
        self._final = True
        self._run()
        self._tf_flush()
        self._lt_end()
        self._bodies.flush()
        doc = DocumentEnd(self._out)
        for h in self._end_handlers:
            h(doc)
        self._out.release_all()
        data = self._out.take()
        # its one reference cycle (text bodies -> registry) broken once done: it dies by reference count, not in the
        # cyclic collector (~45 objects per page, ~15 us per 2 KB gzip page served; issue 19 row 3)
        self._bodies.reg = FINISHED
        return data

    def _run(self) -> None:
        buf = self._buf
        pos = 0
        n = len(buf)
        final = self._final
        lexer = self._lexer
        max_tag = self.max_tag_bytes
        boring = self._boring or self._boring_re()
        self._boring = boring
        needle = self._needle
        scan = self._scan
        # the hand-written scan (compiled builds) covers the pattern without needle guards
        hand = COMPILED_SCAN and (bool(needle) or scan is not None or not self._needle_handlers)
        stop_names = self._stop_names
        stop_ends = self._stop_ends
        nfilt, efilt = self._stop_filters
        nlen = len(needle)
        fgn_ok = self._fgn_ok
        fgn_re = self._fgn_re
        fgn_names = self._fgn_names
        fgn_ends = self._fgn_ends
        fnfilt, fefilt = self._fgn_filters
        raw_names = self._raw_names
        # The lower-cased buffer (one C pass) locates the single needle for the fast scan and for
        # ``_start``'s needle check; ``nxt`` is the needle's next position at or after ``pos``.
        low = buf.lower() if needle or scan is not None else buf
        self._low = low
        self._buf_run = buf
        if scan is not None:
            scan.reset(low)
            nxt = scan.next(pos)
        else:
            nxt = low.find(needle, pos) if needle else -1
            if nxt < 0:
                nxt = n
        hooks = self._hooks
        # Text filter: the fast scan must stop ``behind`` bytes before the next text needle and,
        # mid-stream, ``hold`` bytes before the end (a needle may be cut by the chunk boundary).
        tf = self._tf
        tlow = b""
        tnxt = n
        tcap = n
        tf_re = self._tf_re
        tf_needle = self._tf_needles[0] if self._tf_needles else b""
        tf_scan = self._tf_scan
        tf_behind = self._tf_behind + (tf_scan.slack if tf_scan is not None else 0)
        suspect = self._suspect
        snxt = n
        if tf is not None or suspect is not None:
            tlow = low if needle or scan is not None else buf.lower()
            if tf_scan is not None:
                tf_scan.reset(tlow)
        if tf is not None:
            tcap = n if final else n - self._tf_hold
            tnxt = -2
        if suspect is not None:
            snxt = -2
        # the text filter's one needle is the scan's (the origin host, same lower-cased buffer):
        # its next position is ``nxt``, no second search
        tf_same = (tf is not None and tf_scan is None and tf_re is None and scan is None and bool(needle)
                   and tf_needle == needle and tlow is low)
        while pos < n or final:
            if self._tf_pending and pos < n and buf[pos] == 0x3C and pos + 1 < n and (
                    is_alpha(buf[pos + 1]) or buf[pos + 1] in b"/!?"):
                self._tf_flush()  # markup: the text run ended
            if self._skipper is not None:
                end = self._skipper.scan(buf[pos:])
                if end < 0:
                    self._emit_long(buf[pos:])
                    pos = n
                    break
                self._emit_long(buf[pos : pos + end])
                self._lt_end()
                pos += end
                self._skipped_tag_done()
                continue
            if (lexer.state == DATA and not self._pending and not self._observers and not self._any_handlers
                    and not self._sim.stack and not self._tf_pending):
                if nxt < pos:
                    if scan is not None:
                        nxt = scan.next(pos)
                    elif needle:
                        nxt = low.find(needle, pos)
                        if nxt < 0:
                            nxt = n
                bound = nxt
                if tf is not None:
                    if tnxt < pos:
                        if tf_same:
                            tnxt = nxt
                        elif tf_scan is not None:
                            tnxt = tf_scan.next(pos)
                        elif tf_re is not None:
                            tm = tf_re.search(tlow, pos)
                            tnxt = n if tm is None else tm.start()
                        else:
                            tnxt = tlow.find(tf_needle, pos)
                            if tnxt < 0:
                                tnxt = n
                    # No reference's prefix holds a '>': text up to the last one before the host
                    # is safe to skip (the host is often in a tag's attribute: the tags before it
                    # stay on the fast path instead of going through the lexer); likewise for a
                    # reference cut at the end of the buffer (the held bytes).
                    tb = tnxt - tf_behind if tnxt < n else n
                    if tb < bound:
                        tb = past_last_gt(buf, tb, pos, tnxt)
                        if tb < bound:
                            bound = tb
                    if tcap < bound:
                        tcap = past_last_gt(buf, tcap, pos, n)
                        if tcap < bound:
                            bound = tcap
                if suspect is not None:
                    if snxt < pos:
                        snxt = self._suspect_next(tlow, pos)
                    # a text filter decides a reference spelled with character references from
                    # the text before it too (``https://origin&#46;example``): stop that far back,
                    # but not before the last ``>`` (no reference holds one; tags keep the fast path)
                    sb = snxt
                    if tf is not None and snxt < n:
                        sb = snxt - self._tf_hold
                        gt = buf.rfind(b">", sb if sb > pos else pos, snxt)
                        if gt >= 0:
                            sb = gt + 1
                    if sb < bound:
                        bound = sb
                if bound < pos:
                    bound = pos
                if hand:
                    q = scan_boring(buf, pos, bound, stop_names, stop_ends, nfilt, efilt)
                else:
                    m = boring.match(buf, pos, bound)
                    q = m.end() if m is not None else pos
                if q > pos:
                    self._out.emit(buf[pos:q])
                    pos = q
                    if pos >= n and not final:
                        break
                if pos >= tcap and pos < n and not final and buf[pos] != 0x3C:
                    # Mid-stream, at the text filter's hold: ``buf[pos:]`` is under ``hold`` bytes
                    # with no '>' (``tcap`` is past the last one). Carried into the next feed, where
                    # the fast path scans it with what follows, instead of a text token through the
                    # lexer and the filter here and the token path for the rest of its run there.
                    break
                if pos < n and buf[pos] == 0x3C:  # '<'
                    te = -2
                    ne = -2
                    if hooks and nxt < n:
                        # Byte-level shortcut for a plain start tag that holds a hook's needle.
                        te, ne = tag_span(buf, pos, n) if hand else tag_span_re(buf, pos)
                        hook: RawTagHandler | None = None
                        if scan is None:
                            if te >= nxt + nlen:
                                hook = hooks[0].hook
                        elif nxt < te:
                            hook = self._hook_for(low, pos, te)
                        if hook is not None and te - pos <= max_tag and snxt >= te:
                            name = low[pos + 1 : ne]
                            if name not in stop_names:
                                new = hook(buf, low, pos, ne, te - 1, te, name)
                                if new is not None:
                                    self._out.emit(new)
                                    pos = te
                                    continue
                    if fgn_ok and pos < bound:
                        # A whole <svg>/<math> element that leaves the tree simulator as it found
                        # it (nothing inside breaks out, nests a root or opens an integration
                        # point), before the bound (no needle, suspect or text-filter stop
                        # inside): one run, as its tokens would have been emitted one by one.
                        if hand:
                            fe = foreign_end(buf, pos, bound, fgn_names, fgn_ends, fnfilt, fefilt)
                        else:
                            assert fgn_re is not None
                            fm = fgn_re.match(buf, pos, bound)
                            fe = fm.end() if fm is not None else -1
                        if fe > pos:
                            self._out.emit(buf[pos:fe])
                            pos = fe
                            continue
                    if raw_names:
                        # A whole <script>/<style> whose start tag holds no needle or suspect:
                        # its body to the text handlers as the tokens would have brought it.
                        if te == -2:
                            te, ne = tag_span(buf, pos, n) if hand else tag_span_re(buf, pos)
                        re_ = self._raw_body(buf, low, pos, n, nxt if snxt > nxt else snxt, te, ne)
                        if re_ > pos:
                            pos = re_
                            continue
            tok = lexer.next(buf, pos, final)
            if tok is None:
                if n - pos > max_tag and not final:
                    pos = self._start_skipping(buf, pos)
                    continue
                break
            kind = tok.kind
            if kind != TEXT:
                self._tf_flush()
            if (kind in (START, END)) and tok.end - tok.start > max_tag:
                # An over-long tag that arrived whole is treated like one that arrived in pieces:
                # passed through without handlers (the lexer already applied its state change).
                log.warning("html: tag of %d bytes passed through without handlers", tok.end - tok.start)
                if kind == END:
                    self._bodies.flush()
                if self._lt_make is not None:
                    self._lt = self._lt_make()
                self._emit_long(buf[tok.start : tok.end])
                self._lt_end()
                if kind == START:
                    self._begin_text(tok.name, b"<" + tok.name + b">")
            else:
                self._token(buf, tok)
            pos = tok.end
        self._buf = buf[pos:] if pos < n else b""

    def _raw_body(self, buf: bytes, low: bytes, pos: int, n: int, limit: int, te: int, ne: int) -> int:
        """The raw-text element (``_raw_names``) whose start tag ``buf[pos:te]`` (name end ``ne``;
        ``low`` is the lower-cased buffer) ends by ``limit`` (no needle or suspect in it), read
        whole when ``scanner.raw_text_end`` finds its end tag in the buffer and the body fits the
        text handlers' limits: start tag, body (to the text handlers) and end tag emitted as the
        token path emits them; returns the end of its end tag, else -1 (the token path reads it)."""
        max_tag = self.max_tag_bytes
        if te < 0 or te > limit or te - pos > max_tag:
            return -1
        name = low[pos + 1 : ne]
        if name not in self._raw_names:
            return -1
        bs, ee = raw_text_end(buf, low, te, n, name, RAW_STATE[name] == SCRIPT)
        if ee < 0 or ee - bs > max_tag or bs - te > min(self.stream_text_after, self.max_text_bytes):
            return -1
        out = self._out
        out.emit(buf[pos:te])
        self._lexer.last_start_tag = name
        bodies = self._bodies
        bodies.begin(name, buf[pos:te], whole=True)  # all in the buffer: no streaming decision
        if bs > te:
            bodies.collect(buf[te:bs])
        bodies.flush()
        out.emit(buf[bs:ee])
        return ee

    def _start_skipping(self, buf: bytes, pos: int) -> int:
        """An incomplete tag outgrew ``max_tag_bytes``: stream it out raw from here on."""
        self._tf_flush()
        log.warning("html: tag longer than %d bytes streamed through without handlers", self.max_tag_bytes)
        m = re.match(rb"<(/?)([a-zA-Z][^\t\n\f\r />]*)", buf[pos : pos + 4096])
        skipper = TagSkipper(doctype=m is None)
        self._skip_name = (m.group(1) + m.group(2).lower()) if m else b""
        self._skipper = skipper
        if self._skip_name.startswith(b"/"):
            self._bodies.flush()
        start = pos + 2 if m else pos  # the skipper starts inside the tag name
        if self._lt_make is not None:
            self._lt = self._lt_make()
        end = skipper.scan(buf[start:])
        if end < 0:
            self._emit_long(buf[pos:])
            return len(buf)
        self._emit_long(buf[pos : start + end])  # not reached: the lexer would have completed it
        self._lt_end()
        self._skipped_tag_done()
        return start + end

    def _skipped_tag_done(self) -> None:
        skipper = self._skipper
        assert skipper is not None
        self._skipper = None
        name = self._skip_name
        if not name:
            return  # a DOCTYPE
        lexer = self._lexer
        if name.startswith(b"/"):
            name = name[1:]
            if lexer.state != DATA:
                lexer.state = DATA
                lexer.script_sub = 0
            else:
                self._sim.end_tag(name)
            return
        lexer.last_start_tag = name
        lexer.state = self._sim.start_tag(name, skipper.closing, lambda _n: None)
        lexer.script_sub = 0
        self._begin_text(name, b"<" + name + b">")

    # -- tokens ----------------------------------------------------------------------------------

    def _token(self, buf: bytes, tok: Token) -> None:
        kind = tok.kind
        if kind == TEXT:
            piece = buf[tok.start : tok.end]
            if self._bodies.text is not None:
                self._bodies.collect(piece)
            elif self._observers and tok.state == DATA:
                unit = TextChunk(piece)
                self._observers = [o for o in self._observers if o(unit)]
                for b in unit._before:
                    self._out.emit(b)
                self._emit_text(unit.serialize())
                for b in unit._after:
                    self._out.emit(b)
            else:
                self._emit_text(piece)
        elif kind == START:
            self._start(buf, tok)
        elif kind == END:
            self._end(buf, tok)
        else:
            self._out.emit(buf[tok.start : tok.end])

    def _emit_text(self, piece: bytes) -> None:
        tf = self._tf
        if tf is None or self._out.suppress:
            self._out.emit(piece)
            return
        self._tf_pending = True
        self._out.emit(tf.feed(piece))

    def _start(self, buf: bytes, tok: Token) -> None:
        name = tok.name
        for p in self._pending:
            if p.name == name:
                p.depth += 1
        handlers = self._start_handlers.get(name)
        needle_hs = self._needle_handlers
        if (self._hooks and not handlers and not self._any_handlers and not self._observers
                and buf is self._buf_run and (self._needle or self._scan is not None)):
            # A raw-text or foreign-content start tag (the fast path leaves those to the lexer)
            # that a raw-byte hook may decide on its bytes, as on the fast path.
            low = self._low
            lo, hi = tok.start, tok.end
            hook = self._hook_for(low, lo, hi)
            if hook is not None and (self._suspect is None or self._suspect_next(low, lo) >= hi):
                new = hook(buf, low, lo, tok.astart, tok.aend, hi, name)
                if new is not None:
                    self._out.emit(new)
                    self._begin_text(name, buf[lo:hi])
                    return
        el: Element | None = None
        if handlers or self._any_handlers or self._observers:
            el = Element(buf, tok)
            for o in list(self._observers):
                if not o(el):
                    self._observers.remove(o)
            for h in self._any_handlers:
                h(el)
            for h in handlers or ():
                h(el)
        if needle_hs:
            if (self._needle or self._scan is not None) and buf is self._buf_run:
                lowered = self._low  # the whole buffer, lower-cased once per ``_run``
                lo, hi = tok.start, tok.end
            else:
                lowered = buf[tok.start : tok.end].lower()
                lo, hi = 0, len(lowered)
            called = False
            for needle, h in needle_hs:
                if lowered.find(needle, lo, hi) >= 0:
                    if el is None:
                        el = Element(buf, tok)
                    h(el)
                    called = True
            if not called and self._suspect is not None and (
                    self._suspect_next(lowered, lo) < hi
                    if lowered is self._low and (self._needle or self._scan is not None)
                    else self._suspect(lowered, lo, hi) >= 0):
                if el is None:
                    el = Element(buf, tok)
                for _n, h in needle_hs:
                    h(el)
        if el is None:
            self._out.emit(buf[tok.start : tok.end])
            self._begin_text(name, buf[tok.start : tok.end])
            return
        for b in el._before:
            self._out.emit(b)
        void = name in VOID or (self._lexer.state == DATA and self._sim.stack and el.self_closing)
        if el.removed:
            if void:
                for b in el._after:
                    self._out.emit(b)
            else:
                self._track_end(_Pending(name, [], el._after, True))
                self._out.suppress += 1
            self._begin_text(name, el.raw)
            return
        self._out.emit(el.serialize())
        for b in el._prepend:
            self._out.emit(b)
        if void:
            for b in el._append + el._after:
                self._out.emit(b)
        elif el._append or el._after:
            self._track_end(_Pending(name, el._append, el._after, False))
        self._begin_text(name, el.raw)

    def _hook_for(self, low: bytes, lo: int, hi: int) -> RawTagHandler | None:
        """The raw-byte hook that may take the tag ``low[lo:hi]`` (lower-cased), or None."""
        hooks = self._hooks
        if self._scan is None:
            return hooks[0].hook if has_needle(low, self._needle, lo, hi) else None
        for hp in hooks:
            if hp.others:
                if not only_inside(low, lo, hi, hp.own, hp.others):
                    continue
            elif not has_needle(low, hp.own, lo, hi):
                continue
            for b in hp.blockers:
                if has_needle(low, b, lo, hi):
                    return None
            return hp.hook
        return None

    def _track_end(self, pending: _Pending) -> None:
        # This start tag was counted as nesting for older entries; it now has its own entry.
        for p in self._pending:
            if p.name == pending.name:
                p.depth -= 1
        self._pending.append(pending)

    def _begin_text(self, name: bytes, start_tag: bytes) -> None:
        if self._lexer.state != DATA and name in self._text_handlers:
            self._bodies.begin(name, start_tag)

    def _end(self, buf: bytes, tok: Token) -> None:
        name = tok.name
        raw = buf[tok.start : tok.end]
        if self._bodies.text is not None:
            self._bodies.flush()
        pend: _Pending | None = None
        for i in range(len(self._pending) - 1, -1, -1):
            p = self._pending[i]
            if p.name == name:
                if p.depth == 0:
                    pend = p
                    del self._pending[i]
                else:
                    p.depth -= 1
                break
        if pend is not None and not pend.removed:
            for b in pend.append:
                self._out.emit(b)
        handlers = self._end_tag_handlers.get(name)
        if handlers:
            et = EndTag(name, raw)
            for h in handlers:
                h(et)
            for b in et._before:
                self._out.emit(b)
            self._out.emit(raw)
            for b in et._after:
                self._out.emit(b)
        else:
            self._out.emit(raw)
        if pend is not None:
            if pend.removed:
                self._out.suppress -= 1
            for b in pend.after:
                self._out.emit(b)
