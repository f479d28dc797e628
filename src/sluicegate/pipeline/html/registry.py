"""The handler registry: what the handlers of one document want, and the scan plan it implies.

Owns the registration API of ``HtmlRewriter`` (``on_element`` selectors, needles, raw-byte hooks
and suspect scans; ``on_end_tag``, ``on_text``, ``on_end``, ``observe``; the text filter, the text
streamer, the long-tag filter) and ``_boring_re``, which turns the registrations into the fast
scanner's plan: the stop names and end names, the single needle or the ``NeedleScan`` of several,
the one raw hook that may take a tag, the text filter's needle scan, the compiled pattern, and
which whole elements the fast path may take without tokens (``<svg>``/``<math>`` runs: names and
pattern; raw-text elements with text handlers).
Must not know: the main loop, tokens in flight, the output queue, rules or hosts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sluicegate.pipeline.html.needles import NeedleScan
from sluicegate.pipeline.html.scanner import (
    FOREIGN_END_STOPS,
    FOREIGN_ROOTS,
    FOREIGN_STOPS,
    boring_re,
    foreign_re,
    name_filter,
)
from sluicegate.pipeline.html.treesim import RAW_STATE, RAWTEXT, SCRIPT
from sluicegate.pipeline.html.units import (
    ContentObserver,
    Element,
    ElementHandler,
    EndHandler,
    EndTagHandler,
    RawTagHandler,
    TextFilter,
    TextHandler,
)


class RawHookPlan:
    """A raw-byte hook the fast path may hand a plain start tag: one that holds ``own`` (the
    hook's needle), its handler's other needles ``others`` only inside occurrences of ``own``
    (``needles.only_inside``; aliases of the origin host), and no needle of another handler
    (``blockers``)."""

    __slots__ = ("blockers", "hook", "others", "own")

    def __init__(self, hook: RawTagHandler, own: bytes, others: tuple[bytes, ...],
                 blockers: tuple[bytes, ...]) -> None:
        self.hook = hook
        self.own = own
        self.others = others
        self.blockers = blockers


_SELECTORS: dict[str, tuple[str, str | None]] = {}


def _selector(selector: str) -> tuple[str, str | None]:
    """``on_element``'s selector as (lower-cased tag or ``*``, attribute or None), parsed once per
    distinct selector (a fresh rewriter per response registers the same few)."""
    got = _SELECTORS.get(selector)
    if got is None:
        m = re.fullmatch(r"\s*([a-zA-Z][^\s\[]*|\*)\s*(?:\[\s*([^\s\]]+)\s*\])?\s*", selector)
        if m is None:
            raise ValueError(f"unsupported selector {selector!r}")
        if len(_SELECTORS) >= 256:
            _SELECTORS.clear()
        got = _SELECTORS[selector] = (m.group(1).lower(), m.group(2))
    return got


class HandlerRegistry:
    """What the handlers of one document want, and the fast-scan plan derived from it."""

    def __init__(self, *, max_tag_bytes: int, max_text_bytes: int) -> None:
        self.max_tag_bytes = max_tag_bytes
        self.max_text_bytes = max_text_bytes
        self._start_handlers: dict[bytes, list[ElementHandler]] = {}
        self._any_handlers: list[ElementHandler] = []
        self._needle_handlers: list[tuple[bytes, ElementHandler]] = []
        self._end_tag_handlers: dict[bytes, list[EndTagHandler]] = {}
        self._text_handlers: dict[bytes, list[TextHandler]] = {}
        self._end_handlers: list[EndHandler] = []
        self._observers: list[ContentObserver] = []
        # streamed text bodies (``set_text_streamer``)
        self._streamer: Callable[[bytes, bytes, bytes], TextFilter | None] | None = None
        self.stream_text_after = 32 * 1024
        # the body size past which the streamer decides (``set_text_streamer``'s ``decide_at``)
        self.stream_decide_at = 32 * 1024
        # the scan plan (``_boring_re``); None: to be (re)made before the next scan
        self._boring: re.Pattern[bytes] | None = None
        self._needle = b""
        # several needles (``needles.py``): the scan stops at the nearest, found by ``bytes.find``
        # each; False: the older needle-guarded pattern and no raw hook (the tests' reference)
        self.multi_needle_fast = True
        self._scan: NeedleScan | None = None
        self._hooks: list[RawHookPlan] = []
        self._tf_scan: NeedleScan | None = None
        self._raw_hooks: list[RawTagHandler | None] = []
        self._stop_names: frozenset[bytes] = frozenset()
        self._stop_ends: frozenset[bytes] = frozenset()
        self._stop_filters: tuple[bytes, bytes] = (b"", b"")  # scanner.name_filter of both
        # whole ``<svg>``/``<math>`` elements as one run (``scanner.foreign_end``); False: token by
        # token (the tests' reference); the plan's names, filters and (interpreted) pattern
        self.foreign_fast = True
        self._fgn_ok = False
        self._fgn_names: frozenset[bytes] = frozenset()
        self._fgn_ends: frozenset[bytes] = frozenset()
        self._fgn_filters: tuple[bytes, bytes] = (b"", b"")
        self._fgn_re: re.Pattern[bytes] | None = None
        # whole raw-text elements with text handlers (``<script>``, ``<style>``...) taken from the
        # fast path without tokens (``HtmlRewriter._raw_body``); False: token by token (the reference)
        self.raw_fast = True
        self._raw_names: frozenset[bytes] = frozenset()
        self._suspect: Callable[[bytes, int, int], int] | None = None
        # cache of the suspect scan: no suspect in ``_s_buf[_s_from:_s_at]``, one at ``_s_at``
        self._s_buf = b""
        self._s_from = 0
        self._s_at = -1
        # over-long tags (``set_long_tag_filter``): the filter factory
        self._lt_make: Callable[[], TextFilter] | None = None
        # text filter (``set_text_filter``): character data not collected by a text handler
        self._tf: TextFilter | None = None
        self._tf_needles: tuple[bytes, ...] = ()
        self._tf_re: re.Pattern[bytes] | None = None
        self._tf_behind = 0
        self._tf_hold = 0

    # -- registration ----------------------------------------------------------------------------

    def on_element(self, selector: str, handler: ElementHandler, *, needle: bytes | None = None,
                   raw: RawTagHandler | None = None, suspect: Callable[[bytes, int, int], int] | None = None) -> None:
        """Call ``handler`` for start tags matching ``selector``: ``"a"``, ``"*"``, ``"a[href]"``,
        ``"*[src]"``. ``needle`` (lower-case bytes) promises the handler only acts on tags whose
        bytes contain it (case-insensitively), which keeps other tags on the fast path.

        ``raw`` (``"*"`` with a ``needle`` only) is a byte-level shortcut for ``handler``: on the
        fast path, a plain start tag holding the needle is handed to it as spans of the buffer
        (``buf``, ``low`` = ``buf.lower()``, tag ``start``, attribute text ``astart:aend``, tag
        ``end``, lower-cased ``name``) without ``Token``/``Element`` objects. It returns the tag's
        new bytes — which must equal what ``handler`` would make ``Element.serialize`` produce,
        and ``handler`` must not insert content or remove the element for such a tag — or
        ``None`` to take the full path. Several handlers may have raw hooks (the origin rule, the
        first-party signing rule); a tag goes to a hook only when it holds that hook's needle and
        no needle of another handler (``RawHookPlan``); needles of other registrations of the
        same ``handler`` object (origin aliases) may occur only inside occurrences of its own
        (``needles.only_inside``).

        ``suspect`` (with ``needle``): ``suspect(low, start, end)`` gives the first position in
        ``low[start:end]`` (lower-cased bytes) of something the handler must see, or -1; a tag
        holding one is handed to ``handler`` too, on the full path, even without the needle (for
        spellings of the needle the bytes do not show, such as character references)."""
        tag, attr = _selector(selector)
        h = handler
        if attr is not None:
            attr_l = attr.lower()

            def h(el: Element, _inner: ElementHandler = handler, _a: str = attr_l) -> None:
                if el.has_attribute(_a):
                    _inner(el)

        if tag == "*":
            if needle is not None:
                if suspect is not None:
                    self._suspect = suspect
                self._needle_handlers.append((needle.lower(), h))
                self._raw_hooks.append(raw if attr is None else None)
            else:
                self._any_handlers.append(h)
        else:
            self._start_handlers.setdefault(tag.encode(), []).append(h)
        self._boring = None

    def on_end_tag(self, name: str, handler: EndTagHandler) -> None:
        self._end_tag_handlers.setdefault(name.lower().encode(), []).append(handler)
        self._boring = None

    def on_text(self, tag: str, handler: TextHandler) -> None:
        """Hand the whole text of raw-text elements ``tag`` (script, style, title, textarea...).

        A body over ``max_text_bytes`` is handed over once with ``complete`` False and only its
        first bytes in ``raw`` (the rest streams through unmodified); most handlers just return."""
        name = tag.lower().encode()
        if name not in RAW_STATE:
            raise ValueError(f"text handlers are for raw-text elements, not {tag!r}")
        self._text_handlers.setdefault(name, []).append(handler)
        self._boring = None

    def set_text_filter(self, filt: TextFilter, *, needles: tuple[bytes, ...], behind: int, hold: int) -> None:
        """Pass all character data that no text handler collects (data state, RCDATA
        ``title``/``textarea``, other raw text, PLAINTEXT) through ``filt`` in document order.
        ``filt.feed`` may hold bytes back; ``filt.finish`` is called at every markup token (a
        text run ends there) and at document end. The filter promises to change only text
        around one of ``needles`` (lower-case; found case-insensitively) starting at most
        ``behind`` bytes before it, and to hold at most ``hold`` bytes: text elsewhere stays on
        the fast path."""
        self._tf = filt
        self._tf_needles = tuple(n.lower() for n in needles)
        self._tf_re = re.compile(b"|".join(re.escape(n) for n in self._tf_needles)) if len(needles) > 1 else None
        self._tf_behind = behind
        self._tf_hold = hold

    def set_text_streamer(self, decide: Callable[[bytes, bytes, bytes], TextFilter | None], *,
                          after: int = 32 * 1024, decide_at: int | None = None) -> None:
        """Bodies of text-handler elements longer than ``decide_at`` bytes (default ``after``)
        are offered to ``decide(tag, start_tag, first_bytes)`` once, ``first_bytes`` being
        exactly the body's first ``decide_at`` bytes (so the decision does not depend on how the
        input was cut): a filter it returns streams the whole body (handlers are then not called
        for it; output lags by the filter's hold only); ``None`` keeps collecting it whole for
        the handlers (up to ``max_text_bytes``). A ``decide`` that streams a body must stream it
        to the bytes the handlers would have made of it whole (the rules' contract); a small
        ``decide_at`` (``rules.WHOLE_HEAD``) lets a body a chunk cuts leave at once instead of
        waiting for its end tag. ``after``: the fast path reads bodies up to that size whole
        from the buffer (``HtmlRewriter._raw_body``)."""
        self._streamer = decide
        self.stream_text_after = after
        self.stream_decide_at = after if decide_at is None else min(decide_at, after)

    @property
    def text_streamer(self) -> Callable[[bytes, bytes, bytes], TextFilter | None] | None:
        """The ``decide`` of ``set_text_streamer`` (None: not set), for a rule that wraps it."""
        return self._streamer

    def _suspect_next(self, low: bytes, lo: int) -> int:
        """Position of the next suspect at or after ``lo`` in ``low`` (``len(low)``: none), one
        scan per buffer however many tags ask."""
        if low is self._s_buf and self._s_from <= lo <= self._s_at:
            return self._s_at
        suspect = self._suspect
        assert suspect is not None
        p = suspect(low, lo, len(low))
        if p < 0:
            p = len(low)
        self._s_buf = low
        self._s_from = lo
        self._s_at = p
        return p

    def set_long_tag_filter(self, make: Callable[[], TextFilter]) -> None:
        """Bytes of a tag over ``max_tag_bytes`` (which handlers never see) pass through a fresh
        ``make()`` filter per tag; it may raise a pipeline error to refuse the tag."""
        self._lt_make = make


    def on_end(self, handler: EndHandler) -> None:
        """Call ``handler`` once at end of document (before unresolved slots fall back)."""
        self._end_handlers.append(handler)

    def observe(self, observer: ContentObserver) -> None:
        """See every start tag and every data-state text run until the observer returns False."""
        self._observers.append(observer)


    def text_handlers(self, tag: bytes) -> list[TextHandler]:
        """The text handlers of raw-text element ``tag`` (empty: none)."""
        return self._text_handlers.get(tag, [])

    # -- the fast scanner ------------------------------------------------------------------------

    def _boring_re(self) -> re.Pattern[bytes]:
        """The scan plan for the current registrations: its immutable part (names, filters,
        patterns, which hooks may take which tags) made once per distinct registration shape and
        shared by every rewriter with that shape (``ScanPlan``; one per configuration in practice:
        a fresh rewriter per response no longer rebuilds it, ~8 us compiled), then the per-rewriter
        part (hooks bound to this rewriter's handlers, stateful needle scans)."""
        nh = self._needle_handlers
        hs = [h for _n, h in nh]
        key = (tuple(n for n, _h in nh), tuple(next(j for j, hj in enumerate(hs) if hj is h) for h in hs),
               tuple(r is not None for r in self._raw_hooks), frozenset(self._start_handlers),
               frozenset(self._end_tag_handlers), frozenset(self._text_handlers), self._tf_needles,
               self.multi_needle_fast, self.foreign_fast, self.raw_fast)
        plan = _PLANS.get(key)
        if plan is None:
            if len(_PLANS) >= 256:
                _PLANS.clear()
            plan = _PLANS[key] = ScanPlan(key)
        self._needle = plan.needle
        self._scan = NeedleScan(plan.needles) if plan.multi else None
        hooks = self._raw_hooks
        self._hooks = []
        for i, own, others, blockers in plan.hooks:
            hook = hooks[i]
            assert hook is not None
            self._hooks.append(RawHookPlan(hook, own, others, blockers))
        self._tf_scan = NeedleScan(self._tf_needles) if plan.tf_multi else None
        self._stop_names = plan.stop_names
        self._stop_ends = plan.stop_ends
        self._stop_filters = plan.stop_filters
        self._fgn_ok = plan.fgn_ok
        self._fgn_names = plan.fgn_names
        self._fgn_ends = plan.fgn_ends
        self._fgn_filters = plan.fgn_filters
        self._fgn_re = plan.fgn_re
        self._raw_names = plan.raw_names
        return plan.boring


PlanKey = tuple[tuple[bytes, ...], tuple[int, ...], tuple[bool, ...], frozenset[bytes], frozenset[bytes],
                frozenset[bytes], tuple[bytes, ...], bool, bool, bool]


class ScanPlan:
    """The immutable part of a registry's scan plan, made from a registration shape (``PlanKey``:
    the needle handlers' needles in order and which of them share a handler object, which have a
    raw hook, the names with start / end-tag / text handlers, the text filter's needles, the
    three fast-path switches). Shared by every rewriter of that shape (``_PLANS``), never mutated:
    the stop names and end names with their ``scanner.name_filter`` tables, the single needle or
    the several for a ``NeedleScan``, which raw hook may take which tags (by handler index), the
    compiled pattern, the whole-element plans (``<svg>``/``<math>`` runs; raw-text elements)."""

    __slots__ = ("boring", "fgn_ends", "fgn_filters", "fgn_names", "fgn_ok", "fgn_re", "hooks", "multi",
                 "needle", "needles", "raw_names", "stop_ends", "stop_filters", "stop_names", "tf_multi")

    def __init__(self, key: PlanKey) -> None:
        nds, same, has_hook, start_names, end_names, text_names, tf_needles, multi_fast, fgn_fast, raw_fast = key
        needles = frozenset(nds)
        # One needle: the scan is bounded by the needle's next position in the lower-cased buffer
        # instead (``_run``), so the pattern needs no per-byte needle guard.
        self.needle = next(iter(needles)) if len(needles) == 1 else b""
        # Several needles: bounded the same way by the nearest of them (``NeedleScan``).
        multi = len(needles) > 1 and multi_fast
        self.multi = multi
        self.needles = tuple(needles)
        self.hooks: list[tuple[int, bytes, tuple[bytes, ...], tuple[bytes, ...]]] = []
        if self.needle and len(has_hook) == 1 and has_hook[0]:
            self.hooks.append((0, self.needle, (), ()))
        for i, hooked in enumerate(has_hook):
            if not multi or not hooked:
                continue
            own = nds[i]
            others: list[bytes] = []
            blockers: list[bytes] = []
            usable = True
            for j, nd in enumerate(nds):
                shared = same[j] == same[i]  # the same handler object
                if j == i or (nd == own and shared):
                    continue
                if nd == own:
                    usable = False  # another handler wants every tag the hook would take
                elif shared:
                    others.append(nd)
                else:
                    blockers.append(nd)
            if usable:
                self.hooks.append((i, own, tuple(dict.fromkeys(others)), tuple(dict.fromkeys(blockers))))
        self.tf_multi = len(tf_needles) > 1 and multi_fast
        self.stop_names: frozenset[bytes] = frozenset(RAW_STATE) | {b"svg", b"math"} | start_names
        self.stop_ends: frozenset[bytes] = end_names
        self.stop_filters = (name_filter(self.stop_names), name_filter(self.stop_ends))
        # Foreign elements as one run: only when the scan's bound covers every needle (single or
        # ``NeedleScan``, or no needle handlers) and no handler selects or watches a root by name.
        self.fgn_ok = (fgn_fast and (bool(self.needle) or multi or not needles)
                       and not any(r in start_names or r in end_names for r in FOREIGN_ROOTS))
        self.fgn_names = self.stop_names | FOREIGN_STOPS
        self.fgn_ends = self.stop_ends | FOREIGN_END_STOPS
        self.fgn_filters = (name_filter(self.fgn_names), name_filter(self.fgn_ends))
        self.fgn_re = foreign_re(self.fgn_names, self.fgn_ends) if self.fgn_ok else None
        # Raw-text elements whose whole body goes to text handlers (not the text filter), selected
        # and watched by no other handler: the fast path may read them without tokens.
        self.raw_names: frozenset[bytes] = frozenset(
            n for n in text_names
            if RAW_STATE.get(n) in (SCRIPT, RAWTEXT) and n not in start_names and n not in end_names
        ) if raw_fast and (self.needle or multi) else frozenset()
        self.boring = boring_re(self.stop_names, end_names,
                                frozenset() if self.needle or multi else needles)


_PLANS: dict[PlanKey, ScanPlan] = {}
"""Scan plans by registration shape (bounded: cleared past 256 shapes)."""
