"""Other builds to measure against: a mypyc build of this checkout (``scripts/build_mypyc.py --target``) and
the source tree as of a git revision (``--before REV``); a child process puts either first on ``PYTHONPATH``."""

from __future__ import annotations

import shutil
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


def source_at(rev: str, dest: Path) -> Path:
    """``src`` as of ``rev`` under ``dest``: a copy of the checkout's tree (with its compiled modules) whose files
    changed since ``rev`` are put back as they were (added ones removed; a changed module's compiled build
    removed, so it runs pure). Run a child with ``PYTHONPATH=<returned path>`` to measure the old code side by
    side with the new."""
    root = repo_root()
    if root is None:
        raise SystemExit("--before needs a sluicegate checkout (git history): run from one")
    src = dest / "src"
    shutil.copytree(root / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    changed = subprocess.run(["git", "-C", str(root), "diff", "--no-renames", "--name-only", rev, "--", "src"],
                             capture_output=True, text=True, check=True).stdout.split()
    for name in changed:
        path = dest / name
        old = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{name}"], capture_output=True, check=False)
        if old.returncode != 0:  # added since rev
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(old.stdout)
        for built in path.parent.glob(path.stem + ".*.so"):
            built.unlink()
    return src
