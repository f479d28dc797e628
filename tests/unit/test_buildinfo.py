"""sluicegate.buildinfo: the compiled-or-pure choice, on a package tree laid out like an installed build.

Each case builds a small tree (the listed modules' ``.py`` files, extension-module files named as this
interpreter would import them, a build manifest) and asks the decision function about it; the real
compiled import is tested end to end in tests/packaging (a wheel in a clean venv).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
from pathlib import Path

import pytest

from sluicegate import buildinfo
from sluicegate._compiled import COMPILED_MODULES

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "sluicegate"
    for m in COMPILED_MODULES:
        src = pkg.joinpath(*m.split(".")[1:]).with_suffix(".py")
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {m}\n")
    monkeypatch.setattr(buildinfo, "_PKG_DIR", pkg)
    monkeypatch.delenv("SLUICEGATE_PURE_PYTHON", raising=False)
    return pkg


def compile_all(pkg: Path) -> None:
    for m in COMPILED_MODULES:
        src = buildinfo.module_source(m)
        src.with_name(src.stem + SUFFIX).write_bytes(b"\x7fELF")
    digests = {m: hashlib.sha256(buildinfo.module_source(m).read_bytes()).hexdigest() for m in COMPILED_MODULES}
    (pkg / buildinfo.MANIFEST_NAME).write_text(json.dumps({"compiled": True, "mypy": "x", "modules": digests}))


def test_nothing_built(tree: Path) -> None:
    assert buildinfo._decide() == (False, "not built")


def test_build_without_compiler_reports_its_reason(tree: Path) -> None:
    (tree / buildinfo.MANIFEST_NAME).write_text(json.dumps({"compiled": False, "reason": "no working C compiler (x)"}))
    assert buildinfo._decide() == (False, "not built: no working C compiler (x)")


def test_env_switch_wins(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compile_all(tree)
    monkeypatch.setenv("SLUICEGATE_PURE_PYTHON", "1")
    assert buildinfo._decide() == (False, "SLUICEGATE_PURE_PYTHON=1")
    monkeypatch.setenv("SLUICEGATE_PURE_PYTHON", "0")  # "0" means: not forced
    assert buildinfo._decide()[1] != "SLUICEGATE_PURE_PYTHON=0"


def test_fresh_build_then_import_of_the_shared_library(tree: Path) -> None:
    compile_all(tree)
    # The tree is fresh; the decision then imports the shared mypyc library, which these fake files are not.
    compiled, reason = buildinfo._decide()
    if not compiled:  # not built in this environment (or a broken build): an import error, never "stale"
        assert reason is not None and reason.startswith("import error: "), reason


def test_edited_source_is_stale(tree: Path) -> None:
    compile_all(tree)
    edited = buildinfo.module_source(COMPILED_MODULES[1])
    edited.write_text(edited.read_text() + "x = 1\n")
    with pytest.warns(RuntimeWarning, match="stale build"):
        compiled, reason = buildinfo._decide()
    assert not compiled and reason is not None
    assert reason.startswith("stale build: ") and "/".join(COMPILED_MODULES[1].split(".")) + ".py changed" in reason


def test_missing_compiled_module_is_stale(tree: Path) -> None:
    compile_all(tree)
    buildinfo.compiled_files(COMPILED_MODULES[-1])[0].unlink()
    with pytest.warns(RuntimeWarning):
        compiled, reason = buildinfo._decide()
    assert not compiled and reason is not None and f"no compiled module for {COMPILED_MODULES[-1]}" in reason


def test_changed_module_list_is_stale(tree: Path) -> None:
    compile_all(tree)
    manifest = json.loads((tree / buildinfo.MANIFEST_NAME).read_text())
    del manifest["modules"][COMPILED_MODULES[0]]
    (tree / buildinfo.MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.warns(RuntimeWarning):
        compiled, reason = buildinfo._decide()
    assert not compiled and reason is not None and "list of compiled modules changed" in reason


def test_compiled_files_without_manifest_are_stale(tree: Path) -> None:
    compile_all(tree)
    (tree / buildinfo.MANIFEST_NAME).unlink()
    assert buildinfo._decide() == (False, "stale build: compiled modules without a build manifest")


def test_fast_paths_reports_what_is_imported() -> None:
    fp = buildinfo.fast_paths()
    assert set(fp["modules"]) == set(COMPILED_MODULES)
    imported = set(fp["modules"].values())
    if fp["compiled"]:
        assert imported == {"compiled"} and fp["summary"] == "compiled (mypyc)" and fp["reason"] is None
    else:
        assert imported == {"pure"} and fp["summary"] == f"pure Python ({fp['reason']})"


def test_fast_paths_without_loading_imports_none_of_them() -> None:
    """The admin /status asks without loading: the same report, and no listed module imported by it."""
    import subprocess
    import sys

    code = ("import json, sys; from sluicegate import buildinfo; from sluicegate._compiled import COMPILED_MODULES; "
            "fp = buildinfo.fast_paths(load=False); "
            "print(json.dumps([fp, sorted(m for m in COMPILED_MODULES if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    fp, imported = json.loads(out)
    assert imported == []
    assert fp == buildinfo.fast_paths()  # what loading them reports


def test_version_verbose_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from sluicegate.cli import main

    assert main(["version", "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sluicegate ")
    assert any(line.startswith("python 3.") for line in lines)
    assert any(line.startswith("event loop: ") for line in lines)
    assert any(line.startswith("HTTP parser: ") for line in lines)
    fast = [line for line in lines if line.startswith("fast paths: ")]
    assert fast == [f"fast paths: {buildinfo.fast_paths()['summary']}"]
