"""Golden checks over hand-written, real-world-like pages (``corpus/*.html``).

Each page marks origin references with the expected outcome: ``{{O}}`` / ``{{O//}}`` / ``{{OJ}}``
are the origin as ``https://``, ``//`` and JS-escaped ``https:\\/\\/`` forms that must be
rewritten to the proxy host (``{{ENT}}``/``{{ENT2}}``: entity-encoded forms, entities kept);
``{{K}}`` is an origin reference that must be kept. ``{{HEAD}}`` and
``{{END}}`` mark where the head and body-end snippets must appear (removed from the input). Every
page is also checked at several chunkings and with ``inject=False``."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.config.html import HtmlSettings
from sluicegate.dev.html_adapter import rewrite
from sluicegate.pipeline.html import build_html_processor
from tests.unit.pipeline.html.helpers import host_rewriter, run, run_all_splits

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.html"))
HEAD = '<script src="/sg/head.js"></script>'
END = "<script>sgEnd()</script>"
SETTINGS = HtmlSettings(head_inject=[HEAD], body_end_inject=[END])


def _fill(page: str, *, rewritten: bool, head: str, end: str) -> bytes:
    host = "www.example.com" if rewritten else "origin.example.com"
    ent = ("https:&#x2F;&#x2F;www.example.com", "https&#58;//www.example.com") if rewritten else (
        "https:&#x2F;&#x2F;origin.example.com", "https&#58;//origin.example.com")
    page = page.replace("{{ENT}}", ent[0]).replace("{{ENT2}}", ent[1])
    return (page.replace("{{O}}", f"https://{host}").replace("{{O//}}", f"//{host}")
            .replace("{{OJ}}", f"https:\\/\\/{host}").replace("{{K}}", "https://origin.example.com")
            .replace("{{HEAD}}", head).replace("{{END}}", end)).encode()


def test_corpus_size() -> None:
    assert len(CORPUS) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_golden(path: Path) -> None:
    page = path.read_text(encoding="utf-8")
    src = _fill(page, rewritten=False, head="", end="")
    expected = _fill(page, rewritten=True, head=HEAD, end=END)
    rw = host_rewriter()
    assert run_all_splits(lambda: build_html_processor(rw, SETTINGS), src) == expected
    no_inject = _fill(page, rewritten=True, head="", end="")
    assert run(lambda: build_html_processor(rw, SETTINGS, inject=False), [src]) == no_inject
    # the documented testing entry point gives the same bytes, consuming chunks lazily
    chunks = (src[i : i + 100] for i in range(0, len(src), 100))
    assert b"".join(rewrite(chunks, origin="https://origin.example.com", proxy="https://www.example.com")) \
        == no_inject
