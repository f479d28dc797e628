"""The HtmlRewriter API: element edits, insertions, removal, text handlers, Deferred output."""

from __future__ import annotations

from sluicegate.pipeline.html import Deferred, DocumentEnd, Element, EndTag, HtmlRewriter, TextBody
from tests.unit.pipeline.html.helpers import run_all_splits


def test_identity_without_handlers() -> None:
    src = (b"<!DOCTYPE html><HTML><p class=x id='y' data-z=\"1\">a &amp; b</p><!-- c --><?pi?>"
           b"<svg><![CDATA[ <x> ]]></svg><script><!--<script></script>--></script></HTML>\xff\xfe")
    assert run_all_splits(HtmlRewriter, src) == src


def test_attribute_edits_and_insertions() -> None:
    def make() -> HtmlRewriter:
        rw = HtmlRewriter()

        def on_a(el: Element) -> None:
            assert el.get_attribute("HREF") == "/x?a=1&b"
            el.set_attribute("href", 'say "hi"')
            el.remove_attribute("class")
            el.set_attribute("data-new", "v")
            el.before(b"[B]")
            el.prepend(b"[P]")
            el.append(b"[A]")
            el.after(b"[F]")

        rw.on_element("a[href]", on_a)
        rw.on_element("img", lambda el: el.after(b"[I]"))
        rw.on_end_tag("div", lambda t: t.before(b"[/D]"))
        return rw

    src = b"<div><a class=c href='/x?a=1&amp;b'>t<a>n</a>u</a><img src=i></div><a>no</a>"
    assert run_all_splits(make, src) == (
        b"<div>[B]<a href='say \"hi\"' data-new=\"v\">[P]t<a>n</a>u[A]</a>[F]<img src=i>[I][/D]</div><a>no</a>"
    )


def test_remove_element_with_content() -> None:
    def make() -> HtmlRewriter:
        rw = HtmlRewriter()
        rw.on_element("aside", lambda el: el.remove())
        return rw

    src = b"<p>a<aside>x<aside>y</aside>z</aside>b</p>"
    assert run_all_splits(make, src) == b"<p>ab</p>"


def test_text_handler_gets_whole_body_and_writes_raw() -> None:
    bodies: list[bytes] = []

    def make() -> HtmlRewriter:
        rw = HtmlRewriter()

        def h(t: TextBody) -> None:
            bodies.append(t.raw)
            t.replace(t.raw.upper() + b" && <b>")

        rw.on_text("script", h)
        return rw

    src = b"<script type=x>if(a<b)</scr+ipt></script><p>x</p>"
    assert run_all_splits(make, src) == b"<script type=x>IF(A<B)</SCR+IPT> && <b></script><p>x</p>"
    assert set(bodies) == {b"if(a<b)</scr+ipt>"}


def test_document_end_hook() -> None:
    def make() -> HtmlRewriter:
        rw = HtmlRewriter()
        rw.on_end(lambda d: d.append(b"<!--end-->"))
        return rw

    assert run_all_splits(make, b"<p>x") == b"<p>x<!--end-->"


class _Collector:
    """A filter that defers script 1 and resolves it when script 3 arrives."""

    def __init__(self) -> None:
        self.slot: Deferred | None = None
        self.count = 0
        self.held_at_resolve = -1

    def __call__(self, t: TextBody) -> None:
        self.count += 1
        if self.count == 1:
            self.slot = t.defer()
        elif self.count == 3:
            assert self.slot is not None
            self.held_at_resolve = t.held_bytes
            self.slot.resolve(b"ONE+" + t.raw)
            t.replace(b"THREE")


def test_deferred_resolved_two_scripts_later_keeps_order() -> None:
    src = b"<p>a</p><script>one</script><i>b</i><script>two</script><b>c</b><script>three</script><u>d</u>"
    expected = (b"<p>a</p><script>ONE+three</script><i>b</i><script>two</script><b>c</b>"
                b"<script>THREE</script><u>d</u>")
    collectors: list[_Collector] = []

    def make() -> HtmlRewriter:
        rw = HtmlRewriter()
        c = _Collector()
        collectors.append(c)
        rw.on_text("script", c)
        return rw

    assert run_all_splits(make, src) == expected
    assert all(c.held_at_resolve == len(b"one</script><i>b</i><script>two</script><b>c</b><script>")
               for c in collectors)

    # feed() returns output only up to the first unresolved slot
    rw = make()
    assert rw.feed(b"<p>a</p><script>one</script><i>b</i>") == b"<p>a</p><script>"
    assert rw.held_bytes == len(b"one</script><i>b</i>")
    assert rw.feed(b"<script>two</script>") == b""
    out = rw.feed(b"<b>c</b><script>three</script><u>d</u>")
    assert out == b"ONE+three</script><i>b</i><script>two</script><b>c</b><script>THREE</script><u>d</u>"
    assert rw.held_bytes == 0
    assert rw.finish() == b""


def test_unresolved_slot_falls_back_and_end_hook_can_resolve() -> None:
    def make(resolve_at_end: bool) -> HtmlRewriter:
        rw = HtmlRewriter()
        slots: list[Deferred] = []

        def h(t: TextBody) -> None:
            slots.append(t.defer())
            if resolve_at_end and len(slots) == 1:
                def end(doc: DocumentEnd) -> None:
                    for s in slots:
                        s.resolve(b"R")
                t.on_end(end)

        rw.on_text("script", h)
        return rw

    src = b"<script>x</script><p>y</p><script>z</script>tail"
    assert run_all_splits(lambda: make(False), src) == src
    assert run_all_splits(lambda: make(True), src) == b"<script>R</script><p>y</p><script>R</script>tail"


def test_end_tag_handler_sees_only_real_end_tags() -> None:
    seen: list[bytes] = []

    def make() -> HtmlRewriter:
        rw = HtmlRewriter()

        def h(t: EndTag) -> None:
            seen.append(t.raw)

        rw.on_end_tag("body", h)
        return rw

    src = b"<script>'</body>'</script><!--</body>--><title></body></title></BODY >"
    assert run_all_splits(make, src) == src
    assert set(seen) == {b"</BODY >"}


def test_overlong_tag_passes_through_for_every_split() -> None:
    def make() -> HtmlRewriter:
        rw = HtmlRewriter(max_tag_bytes=256)
        rw.on_element("*", lambda el: el.set_attribute("x", "1"), needle=b"needle")
        return rw

    long_tag = b'<a href="needle' + b"a" * 600 + b'" q=\'>\'>'
    src = b"<b title=needle>" + long_tag + b"<script>needle</script><i title=needle>"
    out = run_all_splits(make, src)
    assert out == (b'<b title=needle x="1">' + long_tag + b'<script>needle</script><i title=needle x="1">')
