"""Tree-builder *simulator*: the little tree knowledge the tokenizer's state depends on.

A real HTML tree builder decides two things the tokenizer needs: which text state follows a start
tag (``<script>`` → script data, ``<title>`` → RCDATA, ...) and whether the current node is in
foreign content (SVG/MathML), where ``<![CDATA[`` opens a CDATA section and ``<style>`` is just an
element. Like lol_html, this module keeps only a stack of foreign elements (``svg``/``math`` and
their descendants, with their namespace and whether they are HTML integration points such as
``foreignObject``); HTML elements are not tracked at all.

Must not know: bytes layout, chunking, rewriting. It is fed lower-cased tag names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

# Text states a start tag can switch the tokenizer into (values shared with ``lexer``).
DATA: Final = 0
RCDATA: Final = 1
RAWTEXT: Final = 2
SCRIPT: Final = 3
PLAINTEXT: Final = 4

RAW_STATE: Final[dict[bytes, int]] = {
    b"script": SCRIPT,
    b"style": RAWTEXT, b"xmp": RAWTEXT, b"iframe": RAWTEXT, b"noembed": RAWTEXT,
    b"noframes": RAWTEXT, b"noscript": RAWTEXT,  # scripting is enabled in browsers
    b"title": RCDATA, b"textarea": RCDATA,
    b"plaintext": PLAINTEXT,
}

# Start tags that end foreign content ("in foreign content" insertion mode, breakout list).
BREAKOUT: Final = frozenset(
    b"b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li "
    b"listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var".split()
)

SVG: Final = 1
MATH: Final = 2
_SVG_INTEGRATION: Final = frozenset((b"foreignobject", b"desc", b"title"))
_MATH_TEXT_INTEGRATION: Final = frozenset((b"mi", b"mo", b"mn", b"ms", b"mtext"))

AttrLookup = Callable[[bytes], "str | None"]


class Frame:
    """One open foreign element (a plain class: compiled, a native object; a ``NamedTuple``'s
    constructor is an interpreted ``__new__``, 3.5 % of the compiled profile on inline SVG)."""

    __slots__ = ("integration", "name", "ns")

    def __init__(self, name: bytes, ns: int, integration: bool) -> None:
        self.name = name
        self.ns = ns
        self.integration = integration  # children are parsed as HTML


class TreeSim:
    """Stack of open foreign elements; empty means plain HTML context."""

    __slots__ = ("stack",)

    def __init__(self) -> None:
        self.stack: list[Frame] = []

    @property
    def foreign(self) -> bool:
        """True when the adjusted current node is a foreign (non-integration-point) element."""
        return bool(self.stack) and not self.stack[-1].integration

    def start_tag(self, name: bytes, self_closing: bool, attr: AttrLookup) -> int:
        """Record a start tag; return the text state that follows it."""
        stack = self.stack
        if stack and not stack[-1].integration:
            top = stack[-1]
            if name in BREAKOUT or (
                name == b"font" and any(attr(a) is not None for a in (b"color", b"face", b"size"))
            ):
                while stack and not stack[-1].integration:
                    stack.pop()
            else:
                if not self_closing:
                    ns = top.ns
                    if name == b"svg" and (ns == SVG or top.name == b"annotation-xml"):
                        ns = SVG
                    stack.append(Frame(name, ns, _integration(ns, name, attr)))
                return DATA
        if name == b"svg" or name == b"math":
            if not self_closing:
                stack.append(Frame(name, SVG if name == b"svg" else MATH, False))
            return DATA
        return RAW_STATE.get(name, DATA)

    def end_tag(self, name: bytes) -> None:
        stack = self.stack
        if not stack:
            return
        if not stack[-1].integration and name in (b"br", b"p"):
            while stack and not stack[-1].integration:
                stack.pop()
            return
        if stack[-1].integration and stack[-1].name != name:
            return  # an HTML end tag inside foreignObject & co.: not ours to track
        for i in range(len(stack) - 1, -1, -1):
            if stack[i].name == name:
                del stack[i:]
                return


def _integration(ns: int, name: bytes, attr: AttrLookup) -> bool:
    if ns == SVG:
        return name in _SVG_INTEGRATION
    if name in _MATH_TEXT_INTEGRATION:
        return True
    if name == b"annotation-xml":
        enc = attr(b"encoding")
        return enc is not None and enc.lower() in ("text/html", "application/xhtml+xml")
    return False
