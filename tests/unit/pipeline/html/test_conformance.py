"""html5lib-tests tokenizer conformance, from the copy vendored in tests/data/html5lib-tests (MIT, see SOURCE there).

Every test runs for every initial state it names, with the input whole and fed one byte at a time
(long inputs: at every offset for a two-way split plus random splits)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from sluicegate.dev.html_adapter import infoset, tokens, tokens_chunked

# Vendored beside the tests (tests/data/html5lib-tests/SOURCE names the upstream commit); nothing outside the
# repository is read, and the test fails, never skips, when the data is missing.
DATA = Path(__file__).resolve().parents[3] / "data" / "html5lib-tests" / "tokenizer"
FILES = sorted(DATA.glob("*.test"))


def _unescape(s: str) -> str:
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), s)


def _deep(o: Any) -> Any:
    if isinstance(o, str):
        return _unescape(o)
    if isinstance(o, list):
        return [_deep(x) for x in o]
    if isinstance(o, dict):
        return {_unescape(k): _deep(v) for k, v in o.items()}
    return o


def _cases(path: Path) -> list[tuple[str, str, str | None, Any, bool]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    xml = "xmlViolationTests" in doc
    out = []
    for t in doc.get("tests", doc.get("xmlViolationTests", [])):
        inp, exp = t["input"], t["output"]
        if t.get("doubleEscaped"):
            inp, exp = _unescape(inp), _deep(exp)
        for state in t.get("initialStates", ["Data state"]):
            out.append((inp, state, t.get("lastStartTag"), exp, xml))
    return out


def test_data_present() -> None:
    assert DATA.is_dir(), f"html5lib-tests not found at {DATA}"
    assert len(FILES) >= 14


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_tokenizer_file(path: Path) -> None:
    failures = []
    cases = _cases(path)
    for inp, state, last, exp, xml in cases:
        got = tokens(inp, state, last)
        if xml:
            got = infoset(got)
        if got != exp:
            failures.append((state, inp, exp, got))
    assert not failures, f"{len(failures)}/{len(cases)} failed, first: {failures[:3]}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_tokenizer_file_chunked(path: Path) -> None:
    rnd = random.Random(path.name)
    failures = []
    for inp, state, last, _exp, _xml in _cases(path):
        whole = tokens(inp, state, last)
        data = inp.encode("utf-8", "surrogatepass")
        splits: list[list[bytes]] = []
        if len(data) <= 64:
            splits.append([data[i : i + 1] for i in range(len(data))])
            splits += [[data[:i], data[i:]] for i in range(1, len(data))]
        else:
            for _ in range(8):
                cuts = sorted(rnd.sample(range(1, len(data)), min(12, len(data) - 1)))
                splits.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
        for chunks in splits:
            got = tokens_chunked(chunks, state, last)
            if got != whole:
                failures.append((state, inp, chunks))
                break
    assert not failures, failures[:3]
