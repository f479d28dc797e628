"""The installable build: what ``pip install <repo>`` gives, tested as a user gets it.

A wheel is built from a copy of this tree by the pip of a clean venv (nothing installed yet, build
isolation: everything the build needs must come from pyproject.toml's build requirements, as for a user's
first ``pip install``), installed into that venv, and checked there: the hot modules
are mypyc extension modules and ``sluicegate version --verbose`` says so, the ``.py`` sources ship too
(``SLUICEGATE_PURE_PYTHON=1`` runs them), the rewriter's conformance suites pass against the installed
wheel, and an edited installed source makes the run time fall back to it (stale build). A second wheel,
built where no C compiler can be found, installs and runs pure Python with the reason printed.

Slow (the build runs mypyc, ~1-2 min): the builds and the venv are session fixtures shared by these tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from sluicegate._compiled import COMPILED_MODULES, GROUP

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], *, env: Mapping[str, str | None] | None = None, cwd: Path, timeout: float = 900) -> str:
    """Run ``cmd``; ``env`` adds to this process's environment (a None value removes the variable)."""
    full = {k: v for k, v in os.environ.items() if k not in ("SLUICEGATE_PURE_PYTHON", "PYTHONPATH")}
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    res = subprocess.run(cmd, env=full, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return res.stdout


def _copy_tree(dest: Path) -> Path:
    """What an sdist/git checkout holds: no build products of this work tree."""
    dest.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "src", dest / "src", ignore=shutil.ignore_patterns(
        "*.so", "__pycache__", "_fastpaths.json", "*.egg-info"))
    return dest


def _build_wheel(venv_dir: Path, work: Path, name: str, env: Mapping[str, str | None] | None = None) -> Path:
    tree = _copy_tree(work / f"tree-{name}")
    dist = work / f"dist-{name}"
    _run([str(venv_dir / "bin" / "python"), "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(tree)],
         env=env, cwd=work)
    (wheel,) = dist.glob("sluicegate-*.whl")
    return wheel


def _so_name(module: str, wheel: zipfile.ZipFile) -> str | None:
    stem = module.replace(".", "/")
    return next((n for n in wheel.namelist() if n.startswith(stem + ".") and n.endswith(".so")), None)


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="session")
def bare_venv(work: Path) -> Path:
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    return env_dir


@pytest.fixture(scope="session")
def compiled_wheel(work: Path, bare_venv: Path) -> Path:
    return _build_wheel(bare_venv, work, "compiled")


@pytest.fixture(scope="session")
def clean_venv(work: Path, bare_venv: Path, compiled_wheel: Path) -> Path:
    """The venv with the compiled wheel installed (dependencies pinned by requirements.lock) and pytest."""
    _run([str(bare_venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "requirements.lock"),
          str(compiled_wheel), "pytest", "pytest-asyncio", "hypothesis"], cwd=work)
    return bare_venv


def _verbose(env_dir: Path, work: Path, **env: str | None) -> str:
    return _run([str(env_dir / "bin" / "sluicegate"), "version", "--verbose"], env=env, cwd=work)


def test_wheel_holds_compiled_modules_and_their_sources(compiled_wheel: Path) -> None:
    assert "-cp3" in compiled_wheel.name and not compiled_wheel.name.endswith("-none-any.whl")
    with zipfile.ZipFile(compiled_wheel) as whl:
        names = set(whl.namelist())
        for module in COMPILED_MODULES:
            assert module.replace(".", "/") + ".py" in names, f"{module}: .py source not shipped"
            assert _so_name(module, whl), f"{module}: no compiled module in the wheel"
        assert _so_name(GROUP + "__mypyc", whl), "the shared mypyc library is missing"
        manifest = json.loads(whl.read("sluicegate/_fastpaths.json"))
    assert manifest["compiled"] is True
    assert sorted(manifest["modules"]) == sorted(COMPILED_MODULES)


def test_installed_wheel_runs_compiled(clean_venv: Path, work: Path) -> None:
    out = _verbose(clean_venv, work)
    assert "fast paths: compiled (mypyc)" in out.splitlines(), out
    assert "event loop: uvloop" in out and "HTTP parser: httptools" in out
    code = ("import importlib, json, sluicegate; "
            "print(json.dumps([sluicegate.__file__] + "
            f"[importlib.import_module(m).__file__ for m in {list(COMPILED_MODULES)!r}]))")
    files = json.loads(_run([str(clean_venv / "bin" / "python"), "-c", code], cwd=work))
    assert files[0].startswith(str(clean_venv)), f"sluicegate imported from {files[0]}, not the clean venv"
    for module, path in zip(COMPILED_MODULES, files[1:], strict=True):
        assert path.startswith(str(clean_venv)) and path.endswith(".so"), f"{module} loaded from {path}"


def test_installed_wheel_pure_python_switch(clean_venv: Path, work: Path) -> None:
    out = _verbose(clean_venv, work, SLUICEGATE_PURE_PYTHON="1")
    assert "fast paths: pure Python (SLUICEGATE_PURE_PYTHON=1)" in out.splitlines(), out
    code = f"import importlib; print(importlib.import_module({COMPILED_MODULES[-1]!r}).__file__)"
    path = _run([str(clean_venv / "bin" / "python"), "-c", code], env={"SLUICEGATE_PURE_PYTHON": "1"}, cwd=work)
    assert path.strip().endswith(".py")


def test_conformance_suites_against_installed_wheel(clean_venv: Path, work: Path) -> None:
    """tests/unit/pipeline/html (html5lib-tests tokenizer conformance, corpus, properties, rules) and the Flight suite,
    run by the clean venv's pytest on the installed compiled wheel (never on src/)."""
    check = ("import sys, pytest, sluicegate; from sluicegate.buildinfo import fast_paths; fp = fast_paths(); "
             "assert fp['compiled'], fp; assert sluicegate.__file__.startswith(sys.prefix), sluicegate.__file__; "
             "sys.exit(pytest.main(sys.argv[1:]))")
    env: dict[str, str] = {}  # the conformance data is vendored in tests/data/html5lib-tests
    out = _run([str(clean_venv / "bin" / "python"), "-c", check, "-q", "-p", "no:cacheprovider", "--rootdir",
                str(REPO), "-c", str(REPO / "pyproject.toml"), str(REPO / "tests" / "unit" / "pipeline" / "html"),
                str(REPO / "tests" / "unit" / "pipeline" / "flight")], env=env, cwd=work, timeout=1800)
    assert " passed" in out and "failed" not in out and "error" not in out, out[-2000:]


def test_edited_installed_source_is_not_shadowed(clean_venv: Path, work: Path) -> None:
    """A stale build never runs: after an installed .py changes, its .py (not the old .so) is imported."""
    (site,) = (clean_venv / "lib").glob("python3*/site-packages")
    src = site / Path(*COMPILED_MODULES[0].split(".")).with_suffix(".py")
    original = src.read_bytes()
    try:
        src.write_bytes(original + b"\n# edited after the build\n")
        out = _verbose(clean_venv, work)
        assert "fast paths: pure Python (stale build: " in out and src.name in out, out
    finally:
        src.write_bytes(original)
    assert "fast paths: compiled (mypyc)" in _verbose(clean_venv, work)


@pytest.fixture(scope="session")
def pure_wheel(work: Path, bare_venv: Path) -> Iterator[Path]:
    """A wheel built where no C compiler can be found: PATH holds no compiler and CC is unset."""
    empty = work / "no-compiler-bin"
    empty.mkdir()
    yield _build_wheel(bare_venv, work, "nocc", env={"PATH": str(empty), "CC": None, "LDSHARED": None})


def test_without_c_compiler_installs_and_runs_pure(pure_wheel: Path, clean_venv: Path, work: Path) -> None:
    with zipfile.ZipFile(pure_wheel) as whl:
        names = whl.namelist()
        manifest = json.loads(whl.read("sluicegate/_fastpaths.json"))
    assert not [n for n in names if n.endswith(".so")], "a wheel built without a compiler holds extension modules"
    assert manifest["compiled"] is False and "no working C compiler" in manifest["reason"]
    target = work / "pure-install"
    _run([str(clean_venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
          str(pure_wheel)], cwd=work)
    out = _verbose(clean_venv, work, PYTHONPATH=str(target))
    assert "fast paths: pure Python (not built: no working C compiler" in out, out
    # ... and it runs: the rewriter rewrites through the pure modules installed from that wheel.
    code = ("import sluicegate.pipeline.html as h, sys; from sluicegate.config.html import HtmlSettings; "
            "from sluicegate.config.origin import Origin; from sluicegate.pipeline.hosts import OriginMatcher; "
            "rw = OriginMatcher(Origin.parse('https://origin.example')).for_request('https', 'pub.example'); "
            "p = h.build_html_processor(rw, HtmlSettings(), inject=False); "
            "out = p.feed(b'<a href=\"https://origin.example/x\">x</a>') + p.finish(); "
            "assert not h.COMPILED and h.__file__.startswith(sys.argv[1]), h.__file__; print(out.decode())")
    out = _run([str(clean_venv / "bin" / "python"), "-c", code, str(target)], env={"PYTHONPATH": str(target)},
               cwd=work)
    assert 'href="https://pub.example/x"' in out, out
