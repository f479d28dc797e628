"""mypyc builds for the pure-vs-compiled benchmarks: the project's own build (``scripts/build_mypyc.py``) of
this checkout into a directory, which a child process then puts first on ``PYTHONPATH``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from sluicegate.bench.lab.output import repo_root


def build_mypyc(target: str | Path, add: Iterable[str] = (), drop: Iterable[str] = ()) -> Path:
    """Compile the checkout's mypyc module set (plus ``add``, minus ``drop``) into ``target``."""
    root = repo_root()
    if root is None:
        raise SystemExit("a mypyc build needs a sluicegate checkout (scripts/build_mypyc.py): run from one")
    cmd = [sys.executable, str(root / "scripts" / "build_mypyc.py"), "--target", str(target)]
    cmd += [a for m in add for a in ("--add-module", m)] + [a for m in drop for a in ("--drop-module", m)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"mypyc build failed ({' '.join(cmd)}):\n{r.stderr[-2000:]}")
    return Path(target)
