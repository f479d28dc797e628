"""Streaming HTML rewriting: WHATWG tokenizer, tree-builder simulator, rewriter API, rules.

Stages (one module each, in data-path order):

* ``charrefs`` — character references as the tokenizer resolves them;
* ``treesim`` — the tree-builder *simulator*: which text state follows a start tag, foreign content;
* ``lexer`` — the tokenizer: byte spans, resumable at any byte, all WHATWG tokenization states;
* ``needles`` — the nearest of several needles by ``bytes.find`` each (the multi-needle scan);
* ``scanner`` — the fast tag scanner: how far a run no handler cares about reaches (regex / byte loop);
* ``attrs`` — attribute values: decode, re-encode byte for byte, find the ones holding a needle;
* ``output`` — the ordered output queue with ``Deferred`` slots;
* ``units`` — the rewritable units handed to handlers (``Element``, ``EndTag``, ``TextBody``...);
* ``registry`` — handler registration and the fast scanner's plan derived from it;
* ``bodies`` — raw-text bodies for text handlers (collected, streamed, bounded);
* ``skipper`` — the over-long tag follower (tags over ``max_tag_bytes`` stream through);
* ``dispatch`` — ``HtmlRewriter``: the main loop that dispatches units and serializes them in order;
* ``urlvalues`` — URL-bearing attribute values (srcset, CSS ``url()``, refresh) and suspect spellings;
* ``rules`` — sluicegate's rules (``SluicegateRules``), every origin decision through ``pipeline.hosts``;
* ``processor`` — ``build_html_rewriter`` / ``build_html_processor`` and the charset gate.

``pipeline.bytescan`` (byte classes, byte-loop ``find``) is shared with ``pipeline.hosts``.

The contract for the proxy::

    build_html_processor(rewriter: HostRewriter, settings: HtmlSettings, *, inject: bool = True,
                         script_filter: ScriptFilter | None = None,
                         charset: str | None = None,
                         extra_rules: Callable[[HtmlRewriter], None] | None = None) -> Transformer

``extra_rules`` installs more handlers on the same rewriter after sluicegate's rules (one tokenizer
pass; the ``[first_party] rewrite_domains`` rule).
Output is byte-identical to the input except where a rule rewrote something, and identical for
every chunking of the input.

Script filter (the hook for Next.js inline ``self.__next_f.push(...)`` scripts)::

    ScriptFilter = Callable[[ScriptText], bool]

It is called with each inline ``<script>`` element's **whole** raw text (up to
``[html] max_text_bytes``; a longer body passes through unmodified, handed over once with
``complete`` False so that the filter knows it went by),
before sluicegate's own script URL rule. Returning True means "handled": the URL rule does not
touch that script. ``ScriptText`` (an alias of ``units.TextBody``) offers:

* ``.raw: bytes`` — the body exactly as received; ``.text`` — the same decoded UTF-8 (lossless);
* ``.complete: bool`` — False for a body over ``[html] max_text_bytes``: ``raw`` is then only its
  first bytes, the rest streams through unmodified; ``replace`` applies to those first bytes and
  the return value is ignored (the generic rule never touches such a body);
* ``.start_tag: bytes`` — the ``<script ...>`` start tag as received;
* ``.attrs: dict[str, str]`` — the ``<script>`` start tag's attributes, decoded;
* ``.replace(new_raw: bytes)`` — the body's new bytes, written raw (never HTML-escaped);
* ``.defer() -> Deferred`` — make the body an output *slot*: everything the rewriter produces
  after it (later scripts, markup) is held, in order, until ``Deferred.resolve(new_raw)`` is
  called — possibly from a later script's callback or from an end-of-document hook. ``feed()``
  returns output only up to the first unresolved slot;
* ``.on_end(callback: Callable[[DocumentEnd], None])`` — register an end-of-document hook (run
  at ``finish()``, before slots still open fall back to their original bytes);
  ``DocumentEnd.append(html)`` adds bytes at the end of the document;
* ``.held_bytes: int`` — output bytes currently held behind unresolved slots (for a cap).

``Deferred`` has ``.resolve(new_raw: bytes)`` (once), ``.resolved`` and ``.original``.
"""

# The compiled (mypyc) or the pure-Python versions of these modules are chosen by
# ``sluicegate.buildinfo`` (the list: ``sluicegate/_compiled.py``; ``SLUICEGATE_PURE_PYTHON=1`` forces
# the ``.py`` sources).
from sluicegate.pipeline.html import dispatch as _dispatch
from sluicegate.pipeline.html.dispatch import HtmlRewriter
from sluicegate.pipeline.html.output import Deferred
from sluicegate.pipeline.html.processor import ascii_compatible, build_html_processor, build_html_rewriter
from sluicegate.pipeline.html.rules import ScriptFilter, ScriptText, SluicegateRules
from sluicegate.pipeline.html.units import DocumentEnd, Element, EndTag, TextBody, TextChunk

COMPILED: bool = not str(getattr(_dispatch, "__file__", "")).endswith(".py")
"""True when the mypyc-compiled modules are in use."""

__all__ = [
    "COMPILED",
    "Deferred",
    "DocumentEnd",
    "Element",
    "EndTag",
    "HtmlRewriter",
    "ScriptFilter",
    "ScriptText",
    "SluicegateRules",
    "TextBody",
    "TextChunk",
    "ascii_compatible",
    "build_html_processor",
    "build_html_rewriter",
]
