"""Build sluicegate into the running venv with its own build backend (setup.py: mypyc, pure fallback).

A thin wrapper over ``pip install``, the one build mechanism (docs/build.md)::

    .venv/bin/python scripts/build_mypyc.py               # editable install: compiled modules in src/
    .venv/bin/python scripts/build_mypyc.py --if-changed  # the same, skipped when nothing it reads changed
    .venv/bin/python scripts/build_mypyc.py --clean       # remove the in-place build (pure Python)
    .venv/bin/python scripts/build_mypyc.py --target DIR [--add-module M ...] [--drop-module M ...]
        # a regular install of a copy of the tree into DIR (for PYTHONPATH=DIR), e.g. for benchmarks;
        # --add-module / --drop-module change the compiled set of the copy (sluicegate bench compiled)

Builds without isolation: the venv must hold the build requirements of pyproject.toml (``./run.sh
setup`` installs them). Prints the resulting ``fast paths:`` line; exits non-zero only when pip fails
(a pure-Python fallback is a successful build, reported by that line).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "src" / "sluicegate"
PIP = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
       "--no-build-isolation"]
_ENV = {k: v for k, v in os.environ.items() if k != "SLUICEGATE_PURE_PYTHON"}


def compiled_modules(tree: Path = ROOT) -> tuple[str, ...]:
    return tuple(runpy.run_path(str(tree / "src" / "sluicegate" / "_compiled.py"))["COMPILED_MODULES"])


def inputs_hash() -> str:
    """Hash of everything the build reads that can change what gets compiled."""
    h = hashlib.sha256()
    files = [ROOT / "setup.py", ROOT / "pyproject.toml", PKG / "_compiled.py"]
    files += [ROOT / "src" / Path(*m.split(".")).with_suffix(".py") for m in compiled_modules()]
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(sys.version.encode())
    return h.hexdigest()[:16]


def fast_paths_line(pythonpath: Path | None = None) -> str:
    env = dict(_ENV, PYTHONPATH=str(pythonpath)) if pythonpath else _ENV
    code = "from sluicegate.buildinfo import fast_paths as f; print(f()['summary'])"
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=tempfile.gettempdir(),
                         capture_output=True, text=True, check=True)
    return "fast paths: " + res.stdout.strip()


def clean() -> None:
    for p in PKG.rglob("*.so"):
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    (PKG / "_fastpaths.json").unlink(missing_ok=True)


def build_editable(if_changed: bool) -> None:
    stamp = Path(sys.prefix) / f".sluicegate-build-{inputs_hash()}"
    if if_changed and stamp.is_file() and (PKG / "_fastpaths.json").is_file():
        return
    for old in Path(sys.prefix).glob(".sluicegate-build-*"):
        old.unlink()
    subprocess.run([*PIP, "-e", str(ROOT)], env=_ENV, cwd=ROOT, check=True)
    stamp.touch()
    print(fast_paths_line())


def build_target(target: Path, extra: list[str], drop: list[str]) -> None:
    """A regular (non-editable) install of a copy of the tree into ``target``."""
    with tempfile.TemporaryDirectory(prefix="sg-build-") as tmp:
        tree = Path(tmp) / "tree"
        for name in ("setup.py", "pyproject.toml", "README.md"):
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
        shutil.copytree(ROOT / "src", tree / "src",
                        ignore=shutil.ignore_patterns("*.so", "__pycache__", "_fastpaths.json", "*.egg-info"))
        if extra or drop:
            listed = tree / "src" / "sluicegate" / "_compiled.py"
            text = listed.read_text()
            for m in drop:
                text = text.replace(f'    "{m}",\n', "")
            lines = "".join(f'    "{m}",\n' for m in extra if m not in compiled_modules(tree))
            listed.write_text(text.replace("\n)\n", "\n" + lines + ")\n", 1))
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([*PIP, "--target", str(target), str(tree)], env=_ENV, cwd=tmp, check=True)
    print(fast_paths_line(target))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", action="store_true", help="remove the in-place build")
    ap.add_argument("--if-changed", action="store_true", help="skip when the build inputs did not change")
    ap.add_argument("--target", type=Path, help="install a copy of the tree into this directory")
    ap.add_argument("--add-module", action="append", default=[], help="with --target: also compile this module")
    ap.add_argument("--drop-module", action="append", default=[], help="with --target: do not compile this module")
    args = ap.parse_args()
    if args.clean:
        clean()
    elif args.target is not None:
        build_target(args.target.resolve(), args.add_module, args.drop_module)
    else:
        build_editable(args.if_changed)


if __name__ == "__main__":
    main()
