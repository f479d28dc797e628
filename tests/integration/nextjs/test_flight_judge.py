"""React's own Flight client judges sluicegate's rewriting of real React 19 Flight payloads.

Payloads are rendered by ``react-server-dom-webpack``'s server (T rows, non-ASCII text, every
typed-array row kind, Maps/Sets/Dates/BigInts, streamed promises). Each is rewritten as a
``text/x-component`` body (several chunkings) and as inline ``__next_f`` scripts (several splits,
binary pieces as ``[3, base64]`` pushes); the client must decode the rewritten bytes to exactly the
original value with origin references rewritten. And the judge must be able to fail.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.pipeline.flight.helpers import ORIGIN, push_script, rewriter, run_inline, run_stream, stream_of

from .conftest import NODE_DIR, NODE_ENV, judge, require_setup


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    require_setup()
    out = tmp_path_factory.mktemp("flight")
    subprocess.run(
        ["node", "--conditions", "react-server", str(NODE_DIR / "gen-flight.mjs"), str(out), ORIGIN],
        cwd=NODE_DIR,
        env=NODE_ENV,
        check=True,
        capture_output=True,
        timeout=120,
    )
    found = {p.stem: p.read_bytes() for p in sorted(out.glob("*.flight"))}
    assert set(found) == {"elements", "values", "binary", "streamed"}
    return found


def expected_value(original: Any) -> Any:
    """The decoded original with origin references rewritten by the same host rules."""
    text = json.dumps(original, ensure_ascii=False, sort_keys=True)
    return json.loads(rewriter().rewrite(text.encode()).decode())


def inline_scripts(stream: bytes, cuts: list[int]) -> list[bytes]:
    """Push scripts as Next.js writes them: UTF-8 pieces as [1, text], others as [3, base64]."""
    scripts = []
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        piece = stream[a:b]
        try:
            scripts.append(push_script(piece.decode()))
        except UnicodeDecodeError:
            scripts.append(push_script(piece, kind=3))
    return scripts


def test_react_client_accepts_every_rewritten_payload(payloads: dict[str, bytes], tmp_path: Path) -> None:
    rng = random.Random(4)
    files: dict[str, tuple[Path, Path]] = {}
    for name, original in payloads.items():
        rewritten = run_stream([original])
        assert rewritten != original, name
        assert run_stream([bytes([b]) for b in original]) == rewritten
        for _ in range(20):
            cuts = sorted(rng.sample(range(1, len(original)), 6))
            chunks = [original[a:b] for a, b in zip([0, *cuts], [*cuts, len(original)], strict=True)]
            assert run_stream(chunks) == rewritten
        for n in (1, 3, 17, 60):
            cuts = sorted(rng.sample(range(1, len(original)), min(n, len(original) - 1)))
            out, inline, _ = run_inline(inline_scripts(original, cuts))
            assert stream_of(out) == rewritten, (name, cuts)
            assert inline.lexer.abandoned_rows == 0
        orig_path, new_path = tmp_path / f"{name}.orig.flight", tmp_path / f"{name}.new.flight"
        orig_path.write_bytes(original)
        new_path.write_bytes(rewritten)
        files[name] = (orig_path, new_path)
    results = judge([p for pair in files.values() for p in pair])
    for name, (orig_path, new_path) in files.items():
        before, after = results[str(orig_path)], results[str(new_path)]
        assert before["ok"], (name, before)
        assert after["ok"], (name, after)
        assert after["value"] == expected_value(before["value"]), name
        assert "//origin.example.com/" not in json.dumps(after["value"]), name


def test_rewritten_t_rows_really_changed_length(payloads: dict[str, bytes]) -> None:
    original = payloads["elements"]
    rewritten = run_stream([original])
    heads_before = [h for h in original.split(b":T")[1:]]
    heads_after = [h for h in rewritten.split(b":T")[1:]]
    lengths_before = [h.split(b",", 1)[0] for h in heads_before]
    lengths_after = [h.split(b",", 1)[0] for h in heads_after]
    assert len(lengths_before) == len(lengths_after) >= 1
    assert lengths_before != lengths_after


def test_the_judge_fails_on_a_wrong_t_length(payloads: dict[str, bytes], tmp_path: Path) -> None:
    rewritten = run_stream([payloads["elements"]])
    head = rewritten.index(b":T") + 2
    comma = rewritten.index(b",", head)
    length = int(rewritten[head:comma], 16)
    cases = {
        "short": rewritten[:head] + b"%x" % (length - 1) + rewritten[comma:],
        "long": rewritten[:head] + b"%x" % (length + 1) + rewritten[comma:],
        # A plain text replacer (no Flight framing) keeps the old T lengths: must break too.
        "naive": payloads["elements"].replace(b"origin.example.com", b"www.example.com"),
        "good": rewritten,
    }
    paths = {}
    for name, data in cases.items():
        paths[name] = tmp_path / f"{name}.flight"
        paths[name].write_bytes(data)
    results = judge(list(paths.values()))
    good = results[str(paths["good"])]
    assert good["ok"]
    for name in ("short", "long", "naive"):
        bad = results[str(paths[name])]
        assert not bad["ok"] or bad["value"] != good["value"], name
    assert not results[str(paths["short"])]["ok"]
    assert not results[str(paths["naive"])]["ok"]


def test_the_judge_fails_on_a_broken_binary_row(payloads: dict[str, bytes], tmp_path: Path) -> None:
    data = run_stream([payloads["binary"]])
    pos = data.index(b":U4,")
    broken = data[:pos] + b":U5," + data[pos + 4 :]
    path = tmp_path / "broken.flight"
    path.write_bytes(broken)
    assert not judge([path])[str(path)]["ok"]
