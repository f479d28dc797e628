"""Compile the HTML rewriter's hot modules with mypyc, in place (optional; pure Python is the fallback).

    .venv/bin/python scripts/build_mypyc.py           # build: *.so next to the *.py under src/
    .venv/bin/python scripts/build_mypyc.py --clean   # remove them again (pure Python)
    .venv/bin/python scripts/build_mypyc.py --target DIR  # build in a copy: DIR/sluicegate (for PYTHONPATH)

Needs only the venv's mypy (it ships mypyc) and a C compiler (gcc). The extension modules take
precedence over the ``.py`` files on import; they are gitignored build products and never needed for
correctness. ``SLUICEGATE_PURE_PYTHON=1`` makes ``sluicegate.pipeline.html`` import the ``.py``
files even when the ``.so`` files exist (see the package ``__init__``);
``sluicegate.pipeline.html.COMPILED`` tells which one is running.

Rebuild after editing any of ``MODULES``: a stale ``.so`` would shadow the edited source.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PKG = SRC / "sluicegate" / "pipeline" / "html"


def _retarget(src: Path) -> None:
    global SRC, PKG
    SRC = src
    PKG = src / "sluicegate" / "pipeline" / "html"
MODULES = ("charrefs", "treesim", "lexer", "rewriter", "rules")
GROUP = "sluicegate_html"  # name of the shared runtime library (src/sluicegate_html__mypyc*.so)


def built_files() -> list[Path]:
    out = [p for m in MODULES for p in PKG.glob(f"{m}.*.so")]
    out += list(SRC.glob(f"{GROUP}__mypyc*.so"))
    return out


def clean() -> None:
    for p in built_files():
        p.unlink()
        print(f"removed {p}")


def build() -> None:
    clean()
    sources = [f"sluicegate/pipeline/html/{m}.py" for m in MODULES]
    setup = (
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"setup(name='sluicegate_html_mypyc', ext_modules=mypycify({sources!r}, group_name={GROUP!r},"
        " opt_level='3', strip_asserts=False))\n"
    )
    with tempfile.TemporaryDirectory(prefix="sg-mypyc-") as tmp:
        script = Path(tmp) / "setup_mypyc.py"
        script.write_text(setup)
        env = dict(os.environ, MYPY_CACHE_DIR=str(Path(tmp) / "mypy_cache"))
        cmd = [sys.executable, str(script), "build_ext", "--inplace", "--build-temp", str(Path(tmp) / "temp"),
               "--build-lib", str(Path(tmp) / "lib")]
        subprocess.run(cmd, cwd=SRC, env=env, check=True)
    shutil.rmtree(SRC / "build", ignore_errors=True)
    for p in built_files():
        print(f"built {p}")
    check = subprocess.run(
        [sys.executable, "-c", "import sluicegate.pipeline.html as h; print(h.COMPILED)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env=dict(os.environ, PYTHONPATH=str(SRC), SLUICEGATE_PURE_PYTHON=""),
    )
    if check.stdout.strip() != "True":
        sys.exit("mypyc build finished but the compiled modules are not the ones imported")
    print("sluicegate.pipeline.html.COMPILED = True")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", action="store_true", help="remove the compiled modules")
    ap.add_argument("--target", type=Path, help="copy src/sluicegate into this directory and build there")
    args = ap.parse_args()
    if args.target is not None:
        dest = args.target.resolve() / "sluicegate"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(SRC / "sluicegate", dest, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
        _retarget(args.target.resolve())
    clean() if args.clean else build()


if __name__ == "__main__":
    main()
