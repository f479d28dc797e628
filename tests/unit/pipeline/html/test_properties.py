"""Property tests: random HTML-ish input, random chunk splits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config.html import HtmlSettings
from sluicegate.dev.html_adapter import tokens_chunked
from sluicegate.pipeline.html import HtmlRewriter, build_html_processor
from tests.unit.pipeline.html.helpers import host_rewriter, run

PIECES = [
    "<", ">", "/", "!", "-", "--", "?", "\"", "'", "=", " ", "\n", "\r", "\t", "a", "x", "&", "&amp;",
    "&#x2F;", "&lt", ";", "]]>", "<![CDATA[", "<!--", "-->", "<!DOCTYPE html>", "script", "SCRIPT", "style",
    "title", "textarea", "svg", "math", "foreignObject", "plaintext", "iframe", "noscript", "body", "head",
    "href=", "src=", "srcset=", "https://origin.example.com/", "//origin.example.com", "origin.example.com",
    "é", "\u2028", "\x00", "</", "<a ", "<script>", "</script>", "<svg>", "</svg>", "<head>", "</body>",
    "<p>", "<img src=", "https:\\/\\/origin.example.com\\/", "<!-->", "<script>x<!--<script>", "</scr",
]
html_ish = st.lists(st.sampled_from(PIECES), max_size=60).map(lambda xs: "".join(xs).encode())
RW = host_rewriter()
INJ = HtmlSettings(head_inject=["<script>H</script>"], body_end_inject=["<script>B</script>"])


def cut(data: bytes, points: list[int]) -> list[bytes]:
    ps = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *ps], [*ps, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(html_ish, st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_identity_rewriter_reproduces_input(data: bytes, points: list[int]) -> None:
    assert run(HtmlRewriter, cut(data, points)) == data


@settings(max_examples=300, deadline=None)
@given(html_ish, st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_rules_output_independent_of_split(data: bytes, points: list[int]) -> None:
    def make() -> object:
        return build_html_processor(RW, INJ)

    whole = run(make, [data])  # type: ignore[arg-type]
    assert run(make, cut(data, points)) == whole  # type: ignore[arg-type]
    ones = [data[i : i + 1] for i in range(len(data))]
    assert run(make, ones) == whole  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(html_ish, st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_tokens_independent_of_split(data: bytes, points: list[int]) -> None:
    assert tokens_chunked(cut(data, points)) == tokens_chunked([data])
