"""Which build is running: the mypyc-compiled fast paths or pure Python, and why.

Owns the run-time choice for the modules listed in ``sluicegate._compiled`` (one choice for all of them,
made when the first of them is imported) and the report of it (``fast_paths()`` for the admin
``/status``, ``describe()`` for ``sluicegate version --verbose``). Pure Python is chosen when:

* ``SLUICEGATE_PURE_PYTHON`` is set (to anything but ``0``);
* the build did not compile (no manifest, or the manifest says why: no C compiler, mypyc error);
* the build is **stale**: a listed module's ``.py`` differs from the source it was compiled from
  (sha256 recorded in the manifest), a compiled module is missing, or the list changed since the
  build — an edited source is never shadowed by an old ``.so``;
* the shared mypyc library does not import (the error text is the reason).

The build (``setup.py``) writes the manifest ``sluicegate/_fastpaths.json``::

    {"compiled": true, "mypy": "2.4.1", "modules": {"sluicegate.pipeline.html.lexer": "<sha256>", ...}}
    {"compiled": false, "reason": "no working C compiler (...)"}

Must not know what the compiled modules do, nor anything of the server or config. Imported by the
package ``__init__`` (keep it cheap: no third-party imports at module level).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from sluicegate._compiled import COMPILED_MODULES, GROUP

PURE_ENV = "SLUICEGATE_PURE_PYTHON"
MANIFEST_NAME = "_fastpaths.json"
_PKG_DIR = Path(__file__).parent
_MODULES = frozenset(COMPILED_MODULES)
_choice: tuple[bool, str | None] | None = None


def module_source(name: str) -> Path:
    """The ``.py`` file of a listed module (``sluicegate.a.b`` -> ``<package dir>/a/b.py``)."""
    parts = name.split(".")[1:]
    return _PKG_DIR.joinpath(*parts[:-1], parts[-1] + ".py")


def compiled_files(name: str) -> list[Path]:
    """The extension-module files of a listed module that this interpreter would import."""
    src = module_source(name)
    stem = src.name[: -len(".py")]
    return [p for suffix in importlib.machinery.EXTENSION_SUFFIXES if (p := src.with_name(stem + suffix)).is_file()]


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest() -> dict[str, Any] | None:
    try:
        data = json.loads((_PKG_DIR / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stale(manifest: dict[str, Any]) -> str | None:
    recorded = manifest.get("modules")
    if not isinstance(recorded, dict) or set(recorded) != _MODULES:
        return "the list of compiled modules changed since the build"
    for name in COMPILED_MODULES:
        src = module_source(name)
        if not compiled_files(name):
            return f"no compiled module for {name} (built for another Python?)"
        try:
            digest = source_digest(src)
        except OSError:
            return f"{name}: source missing"
        if digest != recorded[name]:
            return f"{src.relative_to(_PKG_DIR.parent)} changed since it was compiled"
    return None


def _decide() -> tuple[bool, str | None]:
    value = os.environ.get(PURE_ENV, "")
    if value not in ("", "0"):
        return False, f"{PURE_ENV}={value}"
    manifest = read_manifest()
    if manifest is None:
        if any(compiled_files(m) for m in COMPILED_MODULES):
            return False, "stale build: compiled modules without a build manifest"
        return False, "not built"
    if not manifest.get("compiled"):
        return False, f"not built: {manifest.get('reason') or 'unknown reason'}"
    stale = _stale(manifest)
    if stale is not None:
        reason = f"stale build: {stale}; rebuild with ./run.sh setup or pip install"
        warnings.warn(f"sluicegate runs pure Python: {reason}", RuntimeWarning, stacklevel=2)
        return False, reason
    try:
        importlib.import_module(GROUP + "__mypyc")
    except (ImportError, OSError) as exc:
        return False, f"import error: {exc}"
    return True, None


def choice() -> tuple[bool, str | None]:
    """(compiled, reason for pure Python or None): decided once per process."""
    global _choice
    if _choice is None:
        _choice = _decide()
    return _choice


class _PureFinder:
    """Meta path finder: the listed modules resolve to their ``.py`` files unless the compiled build is chosen."""

    @staticmethod
    def find_spec(name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name not in _MODULES or choice()[0]:
            return None
        return importlib.util.spec_from_file_location(name, module_source(name))


_FINDER = _PureFinder()


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent); the package ``__init__`` calls this."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def fast_paths(load: bool = True) -> dict[str, Any]:
    """The fast-path state for reports (``/status``, ``version --verbose``).

    Keys: ``compiled`` (bool), ``summary`` (``"compiled (mypyc)"`` or ``"pure Python (<reason>)"``),
    ``reason`` (None when compiled), ``modules`` (name -> ``"compiled"``/``"pure"``/``"import error: ..."``),
    ``mypy`` (the mypy/mypyc version that compiled them, when compiled).

    ``load`` imports the listed modules and reports what was imported. ``load=False`` reports what this
    build's choice gives (the manifest, the stale check and the shared library are checked either way) without
    importing them: the admin ``/status`` of a supervisor, which serves none of them (importing them all took a
    supervisor from ~27 to ~45 MiB RSS on its first ``/status``).
    """
    compiled, reason = choice()
    modules: dict[str, str] = {}
    for name in COMPILED_MODULES:
        if not load:
            modules[name] = "compiled" if compiled and compiled_files(name) else "pure"
            continue
        try:
            mod = importlib.import_module(name)
        except Exception as exc:  # reported, not raised: this is a diagnostic
            modules[name] = f"import error: {exc}"
            continue
        modules[name] = "pure" if str(getattr(mod, "__file__", "")).endswith(".py") else "compiled"
    if compiled and any(v != "compiled" for v in modules.values()):
        bad = next(f"{k}: {v}" for k, v in modules.items() if v != "compiled")
        compiled, reason = False, f"import error: {bad}"
    manifest = read_manifest() or {}
    return {
        "compiled": compiled,
        "summary": "compiled (mypyc)" if compiled else f"pure Python ({reason})",
        "reason": reason,
        "modules": modules,
        "mypy": manifest.get("mypy") if compiled else None,
    }


def _version_of(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return str(getattr(mod, "__version__", "?"))


def describe() -> list[str]:
    """The lines of ``sluicegate version --verbose``."""
    import platform

    from sluicegate import __version__

    uvloop = _version_of("uvloop")
    httptools = _version_of("httptools")
    fp = fast_paths()
    lines = [
        f"sluicegate {__version__}",
        f"python {platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        f"event loop: uvloop {uvloop}" if uvloop else "event loop: asyncio (uvloop not installed)",
        f"HTTP parser: httptools {httptools} (llhttp)" if httptools else "HTTP parser: none (httptools not installed)",
        f"fast paths: {fp['summary']}",
    ]
    if fp["compiled"]:
        lines.append(f"compiled modules: {len(fp['modules'])} (mypyc from mypy {fp['mypy']})")
    return lines
