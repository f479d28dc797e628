"""The inference face's import boundaries: no dev tools (the mock), no aiohttp (one upstream client)."""

from __future__ import annotations

import ast
from pathlib import Path

import sluicegate.inference

PKG = Path(sluicegate.inference.__file__).parent


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_inference_imports_neither_dev_nor_aiohttp() -> None:
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        for name in imports(path):
            assert not name.startswith(("sluicegate.dev", "aiohttp", "yarl")), f"{path.name} imports {name}"
            assert not name.startswith("sluicegate.publisher"), f"{path.name} imports {name}"
